"""Users' own account lifecycle: registration (by mode), login, token refresh with rotation, logout, password.

Registration: ``closed`` refuses everyone (invitations too: they wait until the mode is ``invite`` or
``approval``); ``invite`` needs a registration token; ``approval`` takes anyone as ``pending``, or active at once
with a token.

Login answers alike for an unknown email and a wrong password (same message, same argon2 work). Refresh tokens
rotate: each is good once; presenting a used one again revokes its whole session family (a stolen token that was
already rotated ends the session for both holders).

Each method is one unit of work; a change that ends sessions is announced to every replica after it commits.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sluice.config import Settings
from sluice.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from sluice.identity.access_repository import InviteRepository
from sluice.identity.audit import Actor, audit
from sluice.identity.images import user_image
from sluice.identity.invalidation import Announce
from sluice.identity.jwt_tokens import TokenClaims, TokenCodec, TokenInvalid
from sluice.identity.passwords import hash_password, password_problem, verify_password
from sluice.identity.runtime_settings import registration_mode
from sluice.identity.user_repository import UserRepository
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, Membership, PasswordReset, RefreshToken, User
from sluice.store.settings import SettingsRepository
from sluice.store.types import new_id, utcnow

INVITE_PREFIX = "sl-inv-"
RESET_PREFIX = "sl-reset-"
RESET_TTL = timedelta(hours=24)


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


def invite_expiry(hours: float) -> datetime:
    return utcnow() + timedelta(hours=hours)


def create_reset(users: UserRepository, user_id: str, actor: Actor) -> tuple[str, datetime]:
    """A single-use password-reset token for ``user_id`` (valid 24 h), in the caller's unit of work."""
    token = RESET_PREFIX + secrets.token_urlsafe(24)
    expires = utcnow() + RESET_TTL
    users.add_reset(
        PasswordReset(token_hash=hash_invite(token), user_id=user_id, created_by=actor.name, expires_at=expires)
    )
    audit(users.session, actor, "user.password_reset_link", "user", user_id)
    return token, expires


def _with_defaults(user: User) -> User:
    """Fill the columns' plain defaults now, as an insert would: a sign-up for a taken email answers with a user
    that is never stored, and must look exactly like one that was."""
    for column in User.__table__.columns:
        default = column.default
        if getattr(user, column.key) is None and default is not None and getattr(default, "is_scalar", False):
            setattr(user, column.key, getattr(default, "arg", None))
    return user


class Accounts:
    """Registration, sign-in and a user's own password; holds the token codec."""

    def __init__(self, db: Database, codec: TokenCodec, settings: Settings, announce: Announce) -> None:
        self.db = db
        self.codec = codec
        self.settings = settings
        self.announce = announce

    async def register(self, email: str, password: str, invite_token: str | None, actor: Actor) -> User:
        """Create an account as the registration mode allows; raises a clear error otherwise.

        An email that already has an account answers exactly like a new one (same shape, same argon2 work, the
        invitation used up alike) but creates nothing: the answer never tells who has an account. The attempt is
        recorded in the audit log against the existing account, for its admins to see.
        """
        email = normalise_email(email)
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(problem, param="password")
        password_hash = hash_password(password)
        async with self.db.session() as session:
            mode = await registration_mode(SettingsRepository(session), self.settings)
            if mode == "closed":  # no self-registration at all, invitation or not: admins create the accounts
                raise PermissionDenied("Registration is closed.", code="registration_closed")
            if mode == "invite" and invite_token is None:
                raise PermissionDenied("Registration needs an invitation token.", code="invite_required")
            users = UserRepository(session)
            existing = await users.by_email(email)
            user = _with_defaults(User(id=new_id(), email=email, password_hash=password_hash, created_at=utcnow()))
            if existing is None:
                user = await users.add(user)
            if invite_token is not None:
                claimant = existing.id if existing is not None else user.id
                invite = await InviteRepository(session).claim(hash_invite(invite_token), claimant, utcnow())
                if invite is None:
                    raise PermissionDenied(
                        "The registration token is invalid, expired or already used.", code="invalid_invite"
                    )
                workspace_id = invite.workspace_id or DEFAULT_WORKSPACE_ID
                role = invite.role
            else:
                user.status = "pending" if mode == "approval" else "active"
                workspace_id, role = DEFAULT_WORKSPACE_ID, "member"
            if existing is not None:
                audit(session, actor, "user.register_existing", "user", existing.id, workspace_id=workspace_id)
                return user  # never stored: the answer a new account would get
            users.add_membership(user.id, workspace_id, role)
            audit(session, actor, "user.register", "user", user.id, workspace_id=workspace_id, after=user_image(user))
        return user

    async def login(self, email: str, password: str, workspace_id: str | None) -> TokenPair:
        try:
            email = normalise_email(email)
        except InvalidRequest:
            email = ""
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await users.by_email(email) if email else None
            if not verify_password(user.password_hash if user else None, password) or user is None:
                raise AuthenticationFailed("Invalid email or password.", code="invalid_credentials")
            if user.status == "pending":
                raise PermissionDenied("This account is waiting for an administrator's approval.", code="pending")
            if user.status != "active":
                raise AuthenticationFailed("Invalid email or password.", code="invalid_credentials")
            if not (self.settings.sso.password_login and user.password_login):  # the password was right
                raise PermissionDenied("Sign in through single sign-on.", code="password_login_disabled")
            workspace_id = self._workspace_for(user, await users.memberships_of(user.id), workspace_id)
            return self._issue(users, user, workspace_id, family=secrets.token_hex(16))

    async def open_session(self, user_id: str, workspace_id: str | None) -> TokenPair:
        """A new session for a user single sign-on vouched for: the same token pair as after a password login."""
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await users.get(user_id)
            if user is None or user.status != "active":
                raise AuthenticationFailed("This account cannot sign in.", code="invalid_credentials")
            return self._issue(users, user, workspace_id, family=secrets.token_hex(16))

    async def refresh(self, token: str) -> TokenPair:
        """New tokens for a good refresh token. A replay of a rotated one ends its whole session: that is committed
        and announced before the refusal."""
        try:
            claims = self.codec.verify(token, "refresh")
        except TokenInvalid:
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token") from None
        async with self.db.session() as session:
            pair = await self._rotate(UserRepository(session), claims)
        if pair is None:
            await self.announce("user", None)
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
        return pair

    async def logout(self, claims: TokenClaims) -> None:
        if claims.family is not None:
            async with self.db.session() as session:
                await UserRepository(session).end_family(claims.family)
        await self.announce("user", claims.user_id)

    async def change_password(self, user_id: str, current: str, new: str, actor: Actor) -> None:
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await users.get(user_id)
            if user is None or not verify_password(user.password_hash, current):
                raise AuthenticationFailed("The current password is wrong.", code="invalid_credentials")
            problem = password_problem(new)
            if problem:
                raise InvalidRequest(problem, param="new_password")
            user.password_hash = hash_password(new)
            user.password_changed_at = utcnow()
            await users.end_sessions(user.id)  # every other session ends; the caller logs in again
            audit(session, actor, "user.password", "user", user.id)
        await self.announce("user", user_id)

    async def use_reset(self, token: str, new_password: str, actor: Actor) -> str:
        """Set a new password with a reset token (once, before it expires); every session of the user ends."""
        problem = password_problem(new_password)
        if problem:
            raise InvalidRequest(problem, param="new_password")
        now = utcnow()
        async with self.db.session() as session:
            users = UserRepository(session)
            reset = await users.claim_reset(hash_invite(token), now)
            user = await users.get(reset.user_id) if reset is not None else None
            if user is None:
                raise PermissionDenied("The reset link is invalid, expired or already used.", code="invalid_reset")
            user.password_hash = hash_password(new_password)
            user.password_changed_at = now
            await users.end_sessions(user.id, now)
            audit(session, actor, "user.password_reset", "user", user.id)
        await self.announce("user", user.id)
        return user.id

    async def me(self, user_id: str) -> tuple[User | None, Sequence[Membership]]:
        """A signed-in user's account and memberships."""
        async with self.db.session() as session:
            users = UserRepository(session)
            return await users.get(user_id), await users.memberships_of(user_id)

    async def _rotate(self, users: UserRepository, claims: TokenClaims) -> TokenPair | None:
        row = await users.session_for_rotation(claims.token_id)
        if row is None or row.revoked_at is not None:
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
        if not await users.mark_used(row.id, utcnow()):  # a replay of a rotated token: end the whole session
            await users.end_family(row.family)
            return None
        user = await users.get(claims.user_id)
        if user is None or user.status != "active":
            raise AuthenticationFailed("Invalid or expired refresh token.", code="invalid_token")
        return self._issue(users, user, row.workspace_id, family=row.family)

    @staticmethod
    def _workspace_for(user: User, memberships: Sequence[Membership], requested: str | None) -> str | None:
        if requested is not None:
            if user.is_admin or any(m.workspace_id == requested for m in memberships):
                return requested
            raise PermissionDenied("You are not a member of that workspace.", code="not_a_member")
        if memberships:
            return memberships[0].workspace_id
        return DEFAULT_WORKSPACE_ID if user.is_admin else None

    def _issue(self, users: UserRepository, user: User, workspace_id: str | None, family: str) -> TokenPair:
        access, access_claims = self.codec.issue(user.id, "access", workspace_id, family)
        refresh, refresh_claims = self.codec.issue(user.id, "refresh", workspace_id, family)
        users.add_session(
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
