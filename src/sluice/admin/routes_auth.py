"""``/admin/v1/auth/…`` and ``/admin/v1/me``: registration, login, token refresh, logout, password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from sluice.admin.policy import Caller, client_address, public, request_id, requires
from sluice.admin.schemas import (
    LoginRequest,
    Me,
    MembershipOut,
    PasswordChange,
    PasswordResetRequest,
    RefreshRequest,
    Registered,
    RegisterRequest,
    Tokens,
    UserOut,
)
from sluice.errors import AuthenticationFailed, InvalidRequest, RateLimited
from sluice.identity.accounts import TokenPair, normalise_email, register, use_reset
from sluice.identity.audit import Actor
from sluice.identity.jwt_tokens import TokenInvalid
from sluice.identity.runtime_settings import registration_mode
from sluice.services import Services
from sluice.store.models import Membership, User

router = APIRouter(tags=["auth"])

Public = Annotated[Services, Depends(public)]


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        status=user.status,
        is_admin=user.is_admin,
        priority=user.priority,
        created_at=user.created_at,
    )


def tokens_out(pair: TokenPair) -> Tokens:
    return Tokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user_id=pair.user_id,
        workspace_id=pair.workspace_id,
    )


@router.post("/auth/register", status_code=201, response_model=Registered)
async def register_user(body: RegisterRequest, request: Request, services: Public) -> Registered:
    async with services.db.session() as session:
        mode = await registration_mode(session, services.settings)
        user = await register(
            session, mode, body.email, body.password, body.invite_token, Actor("self", request_id(request))
        )
    return Registered(user=user_out(user), pending=user.status == "pending")


@router.post("/auth/login", response_model=Tokens)
async def login(body: LoginRequest, request: Request, services: Public) -> Tokens:
    try:
        email_subject = "email:" + normalise_email(body.email)
    except InvalidRequest:
        email_subject = "email:invalid"
    # The address by the trusted-proxies rule: behind a proxy or through the UI, each browser is its own subject.
    address = client_address(request)
    subjects = (email_subject, f"addr:{address if address is not None else 'unknown'}")
    wait = await services.throttle.blocked(*subjects)
    if wait is not None:
        raise RateLimited(
            "Too many failed logins; try again later.",
            code="login_throttled",
            headers={"retry-after": str(int(wait + 0.999))},
        )
    try:
        async with services.db.session() as session:
            pair = await services.accounts.login(session, body.email, body.password, body.workspace_id)
    except AuthenticationFailed:
        await services.throttle.failed(*subjects)
        raise
    await services.throttle.succeeded(email_subject)
    return tokens_out(pair)


@router.post("/auth/refresh", response_model=Tokens)
async def refresh(body: RefreshRequest, services: Public) -> Tokens:
    async with services.db.session() as session:
        pair = await services.accounts.refresh(session, body.refresh_token)
    if pair is None:
        await services.invalidation.publish("user", None)
        raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
    return tokens_out(pair)


def _access_claims(request: Request, services: Services):  # type: ignore[no-untyped-def]
    authorization = request.headers.get("authorization", "")
    token = authorization.partition(" ")[2].strip()
    try:
        return services.accounts.codec.verify(token, "access")
    except TokenInvalid:
        raise AuthenticationFailed("This needs a user's access token.", code="user_token_required") from None


@router.post("/auth/reset-password", status_code=204)
async def reset_password(body: PasswordResetRequest, request: Request, services: Public) -> None:
    """Set a new password with the single-use link an admin created (no sign-in needed)."""
    async with services.db.session() as session:
        user_id = await use_reset(session, body.token, body.new_password, Actor("self", request_id(request)))
    await services.invalidation.publish("user", user_id)


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, caller: Annotated[Caller, Depends(requires("viewer"))]) -> None:
    services = caller.services
    claims = _access_claims(request, services)
    async with services.db.session() as session:
        await services.accounts.logout(session, claims)
    await services.invalidation.publish("user", claims.user_id)


@router.post("/auth/password", status_code=204)
async def change_password(
    body: PasswordChange, request: Request, caller: Annotated[Caller, Depends(requires("viewer"))]
) -> None:
    services = caller.services
    claims = _access_claims(request, services)
    async with services.db.session() as session:
        await services.accounts.change_password(
            session, claims.user_id, body.current_password, body.new_password, caller.actor
        )
    await services.invalidation.publish("user", claims.user_id)


@router.get("/me", response_model=Me)
async def me(caller: Annotated[Caller, Depends(requires("viewer"))]) -> Me:
    p = caller.principal
    out = Me(
        kind=p.kind,
        id=p.id,
        role=p.role,
        workspace_id=p.workspace_id,
        user_id=p.user_id,
        key_id=p.key_id,
        priority=p.priority,
        allowed_models=sorted(p.allowed_models) if p.allowed_models is not None else None,
    )
    if p.user_id is not None:
        async with caller.services.db.session() as session:
            user = await session.get(User, p.user_id)
            rows = (await session.execute(select(Membership).where(Membership.user_id == p.user_id))).scalars()
            out.workspaces = [MembershipOut(user_id=m.user_id, workspace_id=m.workspace_id, role=m.role) for m in rows]
        if user is not None:
            out.user = user_out(user)
    return out
