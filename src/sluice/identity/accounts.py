"""Users' own account lifecycle: registration (by mode), login, token refresh with rotation, logout, password.

Registration: ``closed`` refuses everyone (invitations too: they wait until the mode is ``invite`` or
``approval``); ``invite`` needs a registration token; ``approval`` takes anyone as ``pending``, or active at once
with a token.

Login answers alike for an unknown email and a wrong password (same message, same argon2 work). Refresh tokens
rotate: each is good once; presenting a used one again revokes its whole session family (a stolen token that was
already rotated ends the session for both holders).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config import RegistrationMode
from sluice.errors import AuthenticationFailed, InvalidRequest, PermissionDenied, SluiceError
from sluice.identity.audit import Actor, audit
from sluice.identity.jwt_tokens import TokenClaims, TokenCodec, TokenInvalid
from sluice.identity.passwords import hash_password, password_problem, verify_password
from sluice.store.models import (
    DEFAULT_WORKSPACE_ID,
    Membership,
    PasswordReset,
    RefreshToken,
    RegistrationToken,
    User,
)
from sluice.store.types import utcnow

INVITE_PREFIX = "sl-inv-"


class Conflict(SluiceError):
    status = 409
    kind = "conflict"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: str
    workspace_id: str | None


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 320 or any(c.isspace() for c in email):
        raise InvalidRequest("A valid email address is required.", param="email")
    return email


def hash_invite(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_invite_token() -> str:
    return INVITE_PREFIX + secrets.token_urlsafe(24)


def user_image(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "is_admin": user.is_admin,
        "priority": user.priority,
    }


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def claim_invite(session: AsyncSession, token: str, user_id: str) -> RegistrationToken:
    """Mark an invitation used by ``user_id``: one conditional UPDATE, so of two concurrent claims exactly one wins."""
    now = utcnow()
    digest = hash_invite(token)
    result = await session.execute(
        update(RegistrationToken)
        .where(
            RegistrationToken.token_hash == digest,
            RegistrationToken.used_at.is_(None),
            RegistrationToken.revoked_at.is_(None),
            RegistrationToken.expires_at > now,
        )
        .values(used_at=now, used_by=user_id)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise PermissionDenied("The registration token is invalid, expired or already used.", code="invalid_invite")
    invite = (
        await session.execute(select(RegistrationToken).where(RegistrationToken.token_hash == digest))
    ).scalar_one()
    return invite


async def register(
    session: AsyncSession,
    mode: RegistrationMode,
    email: str,
    password: str,
    invite_token: str | None,
    actor: Actor,
) -> User:
    """Create an account as the registration mode allows; raises a clear error otherwise."""
    email = normalise_email(email)
    problem = password_problem(password)
    if problem:
        raise InvalidRequest(problem, param="password")
    if mode == "closed":  # no self-registration at all, invitation or not: admins create the accounts
        raise PermissionDenied("Registration is closed.", code="registration_closed")
    if mode == "invite" and invite_token is None:
        raise PermissionDenied("Registration needs an invitation token.", code="invite_required")
    if await user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    user = User(email=email, password_hash=hash_password(password), status="active")
    session.add(user)
    await session.flush()
    if invite_token is not None:
        invite = await claim_invite(session, invite_token, user.id)
        workspace_id = invite.workspace_id or DEFAULT_WORKSPACE_ID
        role = invite.role
    else:
        user.status = "pending" if mode == "approval" else "active"
        workspace_id, role = DEFAULT_WORKSPACE_ID, "member"
    session.add(Membership(user_id=user.id, workspace_id=workspace_id, role=role))
    audit(session, actor, "user.register", "user", user.id, workspace_id=workspace_id, after=user_image(user))
    return user


class Accounts:
    """Login and token operations; one instance per app (holds the token codec)."""

    def __init__(self, codec: TokenCodec) -> None:
        self.codec = codec

    async def login(self, session: AsyncSession, email: str, password: str, workspace_id: str | None) -> TokenPair:
        try:
            email = normalise_email(email)
        except InvalidRequest:
            email = ""
        user = await user_by_email(session, email) if email else None
        if not verify_password(user.password_hash if user else None, password) or user is None:
            raise AuthenticationFailed("Invalid email or password.", code="invalid_credentials")
        if user.status == "pending":
            raise PermissionDenied("This account is waiting for an administrator's approval.", code="pending")
        if user.status != "active":
            raise AuthenticationFailed("Invalid email or password.", code="invalid_credentials")
        workspace_id = await self._workspace_for(session, user, workspace_id)
        return await self._issue(session, user, workspace_id, family=secrets.token_hex(16))

    async def refresh(self, session: AsyncSession, token: str) -> TokenPair | None:
        """New tokens for a good refresh token; None if it was a replay (its session is now revoked: commit, then
        refuse)."""
        try:
            claims = self.codec.verify(token, "refresh")
        except TokenInvalid:
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token") from None
        row = await session.get(RefreshToken, claims.token_id, with_for_update=True)
        if row is None or row.revoked_at is not None:
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
        now = utcnow()
        used = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(used, "rowcount", 0) != 1:  # a replay of a rotated token: end the whole session
            await self._revoke_family(session, row.family)
            return None
        user = await session.get(User, claims.user_id)
        if user is None or user.status != "active":
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
        return await self._issue(session, user, row.workspace_id, family=row.family)

    async def logout(self, session: AsyncSession, claims: TokenClaims) -> None:
        if claims.family is not None:
            await self._revoke_family(session, claims.family)

    async def change_password(self, session: AsyncSession, user_id: str, current: str, new: str, actor: Actor) -> None:
        user = await session.get(User, user_id)
        if user is None or not verify_password(user.password_hash, current):
            raise AuthenticationFailed("The current password is wrong.", code="invalid_credentials")
        problem = password_problem(new)
        if problem:
            raise InvalidRequest(problem, param="new_password")
        user.password_hash = hash_password(new)
        user.password_changed_at = utcnow()
        # Every other session ends; the caller logs in again.
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        audit(session, actor, "user.password", "user", user.id)

    async def _workspace_for(self, session: AsyncSession, user: User, requested: str | None) -> str | None:
        memberships = (
            (
                await session.execute(
                    select(Membership).where(Membership.user_id == user.id).order_by(Membership.created_at)
                )
            )
            .scalars()
            .all()
        )
        if requested is not None:
            if user.is_admin or any(m.workspace_id == requested for m in memberships):
                return requested
            raise PermissionDenied("You are not a member of that workspace.", code="not_a_member")
        if memberships:
            return memberships[0].workspace_id
        return DEFAULT_WORKSPACE_ID if user.is_admin else None

    async def _issue(self, session: AsyncSession, user: User, workspace_id: str | None, family: str) -> TokenPair:
        access, access_claims = self.codec.issue(user.id, "access", workspace_id, family)
        refresh, refresh_claims = self.codec.issue(user.id, "refresh", workspace_id, family)
        session.add(
            RefreshToken(
                id=refresh_claims.token_id,
                user_id=user.id,
                family=family,
                workspace_id=workspace_id,
                expires_at=datetime.fromtimestamp(refresh_claims.expires_at, UTC),
            )
        )
        ttl = int(access_claims.expires_at - datetime.now(UTC).timestamp())
        return TokenPair(access, refresh, max(ttl, 0), user.id, workspace_id)

    async def _revoke_family(self, session: AsyncSession, family: str) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def invite_expiry(hours: float) -> datetime:
    return utcnow() + timedelta(hours=hours)


RESET_PREFIX = "sl-reset-"
RESET_TTL = timedelta(hours=24)


async def create_reset(session: AsyncSession, user_id: str, actor: Actor) -> tuple[str, datetime]:
    """A single-use password-reset token for ``user_id`` (valid 24 h); returns it and its expiry."""
    token = RESET_PREFIX + secrets.token_urlsafe(24)
    expires = utcnow() + RESET_TTL
    session.add(
        PasswordReset(token_hash=hash_invite(token), user_id=user_id, created_by=actor.name, expires_at=expires)
    )
    audit(session, actor, "user.password_reset_link", "user", user_id)
    return token, expires


async def use_reset(session: AsyncSession, token: str, new_password: str, actor: Actor) -> str:
    """Set a new password with a reset token (once, before it expires); every session of the user ends."""
    problem = password_problem(new_password)
    if problem:
        raise InvalidRequest(problem, param="new_password")
    now = utcnow()
    digest = hash_invite(token)
    claimed = await session.execute(
        update(PasswordReset)
        .where(PasswordReset.token_hash == digest, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise PermissionDenied("The reset link is invalid, expired or already used.", code="invalid_reset")
    reset = (await session.execute(select(PasswordReset).where(PasswordReset.token_hash == digest))).scalar_one()
    user = await session.get(User, reset.user_id)
    if user is None:
        raise PermissionDenied("The reset link is invalid, expired or already used.", code="invalid_reset")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = now
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    audit(session, actor, "user.password_reset", "user", user.id)
    return user.id
