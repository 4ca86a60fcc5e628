"""``/admin/v1/auth/…`` and ``/admin/v1/me``: registration, login, token refresh, logout, password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

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
from sluice.identity.accounts import TokenPair, normalise_email
from sluice.identity.audit import Actor
from sluice.identity.jwt_tokens import TokenClaims, TokenInvalid
from sluice.services import Services
from sluice.store.models import User

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
        password_login=user.password_login,
    )


def tokens_out(pair: TokenPair) -> Tokens:
    return Tokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user_id=pair.user_id,
        workspace_id=pair.workspace_id,
    )


def _address(request: Request) -> str:
    """The address by the trusted-proxies rule: behind a proxy or through the UI, each browser is its own subject."""
    found = client_address(request)
    return str(found) if found is not None else "unknown"


@router.post("/auth/register", status_code=201, response_model=Registered)
async def register_user(body: RegisterRequest, request: Request, services: Public) -> Registered:
    """Sign up (as the registration mode allows). An email that has an account answers like a new one."""
    wait = await services.throttle.signup(_address(request))
    if wait is not None:
        raise RateLimited(
            "Too many sign-ups from your address; try again later.",
            code="signup_throttled",
            headers={"retry-after": str(int(wait + 0.999))},
        )
    actor = Actor("self", request_id(request))
    user = await services.accounts.register(body.email, body.password, body.invite_token, actor)
    return Registered(user=user_out(user), pending=user.status == "pending")


@router.post("/auth/login", response_model=Tokens)
async def login(body: LoginRequest, request: Request, services: Public) -> Tokens:
    try:
        account = normalise_email(body.email)
    except InvalidRequest:
        account = "invalid"
    address = _address(request)
    wait = await services.throttle.blocked(account, address)
    if wait is not None:
        raise RateLimited(
            "Too many failed logins; try again later.",
            code="login_throttled",
            headers={"retry-after": str(int(wait + 0.999))},
        )
    try:
        pair = await services.accounts.login(body.email, body.password, body.workspace_id)
    except AuthenticationFailed:
        await services.throttle.failed(account, address)
        raise
    await services.throttle.succeeded(account, address)
    return tokens_out(pair)


@router.post("/auth/refresh", response_model=Tokens)
async def refresh(body: RefreshRequest, services: Public) -> Tokens:
    return tokens_out(await services.accounts.refresh(body.refresh_token))


def access_claims(request: Request, services: Services) -> TokenClaims:
    authorization = request.headers.get("authorization", "")
    token = authorization.partition(" ")[2].strip()
    try:
        return services.accounts.codec.verify(token, "access")
    except TokenInvalid:
        raise AuthenticationFailed("This needs a user's access token.", code="user_token_required") from None


@router.post("/auth/reset-password", status_code=204)
async def reset_password(body: PasswordResetRequest, request: Request, services: Public) -> None:
    """Set a new password with the single-use link an admin created (no sign-in needed)."""
    await services.accounts.use_reset(body.token, body.new_password, Actor("self", request_id(request)))


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, caller: Annotated[Caller, Depends(requires("viewer"))]) -> None:
    services = caller.services
    await services.accounts.logout(access_claims(request, services))


@router.post("/auth/password", status_code=204)
async def change_password(
    body: PasswordChange, request: Request, caller: Annotated[Caller, Depends(requires("viewer"))]
) -> None:
    services = caller.services
    claims = access_claims(request, services)
    await services.accounts.change_password(claims.user_id, body.current_password, body.new_password, caller.actor)


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
        user, memberships = await caller.services.accounts.me(p.user_id)
        out.workspaces = [
            MembershipOut(user_id=m.user_id, workspace_id=m.workspace_id, role=m.role) for m in memberships
        ]
        if user is not None:
            out.user = user_out(user)
    return out
