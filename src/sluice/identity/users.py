"""Signed-in users on the hot path: a JWT access token → Principal, cached like API keys.

The token's signature and claims are checked on every request (microseconds, no I/O); whether its user is still
active, its session not logged out, its workspace membership and role are read from the database at most once per
``auth.user_cache_ttl_seconds`` per session, and dropped at once on every replica when an admin or the user changes
them (see :mod:`sluice.identity.invalidation`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from sluice.config import AuthConfig
from sluice.errors import AuthenticationFailed
from sluice.identity.jwt_tokens import TokenClaims, TokenCodec, TokenInvalid
from sluice.identity.lookups import OUTAGE_RECHECK_SECONDS, SharedLookups, StoreUnavailable, auth_unavailable
from sluice.identity.principal import DEFAULT_PRIORITY, Principal
from sluice.identity.user_repository import UserRepository
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID

MAX_CACHED_SESSIONS = 100_000

SessionKey = tuple[str, str | None, str | None]  # user, workspace, session family


async def principal_for_session(db: Database, claims: TokenClaims) -> Principal | None:
    """The principal an access token stands for now, or None (user gone, not active, logged out, not a member)."""
    async with db.session() as session:
        users = UserRepository(session)
        user = await users.get(claims.user_id)
        if user is None or user.status != "active":
            return None
        if claims.family is not None and await users.family_ended(claims.family):
            return None
        workspace_id = claims.workspace_id or DEFAULT_WORKSPACE_ID
        workspace = await WorkspaceRepository(session).get(workspace_id)
        membership = await users.membership(user.id, workspace_id)
        if workspace is None or workspace.disabled_at is not None:
            return None
        if user.is_admin:
            role = "admin"
        elif membership is None:
            return None
        else:
            role = membership.role
        return Principal(
            kind="user",
            id=user.id,
            role=role,
            workspace_id=workspace_id,
            user_id=user.id,
            priority=user.priority or workspace.priority or DEFAULT_PRIORITY,
            allowed_models=frozenset(workspace.allowed_models) if workspace.allowed_models is not None else None,
            label=f"user:{user.id}",
            expires_at=claims.expires_at,
        )


class UserResolver:
    def __init__(
        self, db: Database, codec: TokenCodec, config: AuthConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.codec = codec
        self._ttl = config.user_cache_ttl_seconds
        self._clock = clock
        self._cache: OrderedDict[SessionKey, tuple[Principal | None, float]] = OrderedDict()
        self._lookups: SharedLookups[SessionKey, Principal | None] = SharedLookups(db.request_deadline)

    async def authenticate(self, token: str) -> Principal:
        try:
            claims = self.codec.verify(token, "access")
        except TokenInvalid:
            raise AuthenticationFailed("Invalid or expired access token.", code="invalid_token") from None
        key: SessionKey = (claims.user_id, claims.workspace_id, claims.family)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > self._clock():
            principal = cached[0]
        else:
            principal = await self._load(key, claims, cached[0] if cached else None)
        if principal is None:
            raise AuthenticationFailed("Invalid or expired access token.", code="invalid_token")
        if principal.expires_at != claims.expires_at:
            principal = _with_expiry(principal, claims.expires_at)
        return principal

    async def _load(self, key: SessionKey, claims: TokenClaims, stale: Principal | None) -> Principal | None:
        if stale is not None and self._lookups.running(key):
            return stale  # a refresh is under way: sessions we already trusted do not wait for it
        try:
            return await self._lookups.wait(key, lambda: self._query_and_remember(key, claims))
        except StoreUnavailable as exc:
            if stale is not None:  # the database is down or hung: sessions we already trusted keep working
                self._cache[key] = (stale, self._clock() + OUTAGE_RECHECK_SECONDS)
                return stale
            raise auth_unavailable("Cannot verify the access token right now; try again shortly.") from exc

    async def _query_and_remember(self, key: SessionKey, claims: TokenClaims) -> Principal | None:
        principal = await principal_for_session(self.db, claims)
        self._cache[key] = (principal, self._clock() + self._ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED_SESSIONS:
            self._cache.popitem(last=False)
        return principal

    async def close(self) -> None:
        await self._lookups.close()

    def forget(self, user_id: str | None = None) -> None:
        """Drop one user's cached sessions (or everyone's)."""
        if user_id is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[0] == user_id]:
            self._cache.pop(key, None)


def _with_expiry(principal: Principal, expires_at: float) -> Principal:
    return Principal(
        kind=principal.kind,
        id=principal.id,
        role=principal.role,
        workspace_id=principal.workspace_id,
        user_id=principal.user_id,
        key_id=principal.key_id,
        priority=principal.priority,
        allowed_models=principal.allowed_models,
        label=principal.label,
        expires_at=expires_at,
    )
