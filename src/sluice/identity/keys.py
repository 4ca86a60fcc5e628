"""API keys: generation, hashing, and resolution to a Principal from an in-process cache.

Keys carry 256 random bits behind a visible ``sk-sl-`` prefix and are stored only as SHA-256 hashes (a fast hash is
right for high-entropy secrets; passwords get argon2id). Resolution is a dict lookup while the cache entry is
fresh; on a miss one database query runs, shared by every concurrent request presenting the same key. Garbage,
SQL and wrong keys all take the same path (hash, cache, one indexed lookup), so they answer alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError

from sluice.config import KeyCacheConfig
from sluice.errors import AuthenticationFailed, Overloaded
from sluice.identity.key_repository import KeyRepository
from sluice.identity.principal import MASTER, Principal
from sluice.store.db import Database
from sluice.store.models import ApiKey, User, Workspace

log = structlog.get_logger("sluice.keys")

KEY_PREFIX = "sk-sl-"
VISIBLE_PREFIX_LENGTH = 12
MAX_TOKEN_LENGTH = 512


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def visible_prefix(secret: str) -> str:
    return secret[:VISIBLE_PREFIX_LENGTH]


def principal_for(key: ApiKey, workspace_disabled: bool = False) -> Principal | None:
    """The principal a stored key stands for, or None if it may not be used."""
    if key.revoked_at is not None or workspace_disabled:
        return None
    return Principal(
        kind="key",
        id=key.id,
        role=str(key.settings.get("role", "member")) if key.settings else "member",
        workspace_id=key.workspace_id,
        user_id=key.user_id,
        key_id=key.id,
        priority=key.priority,
        allowed_models=frozenset(key.allowed_models) if key.allowed_models is not None else None,
        label=key.prefix,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        cache=key.cache,
    )


class _Entry:
    __slots__ = ("fresh_until", "principal")

    def __init__(self, principal: Principal | None, fresh_until: float) -> None:
        self.principal = principal
        self.fresh_until = fresh_until


class KeyResolver:
    """Token → Principal, cached; the hot path touches the database only on a miss."""

    def __init__(
        self,
        db: Database,
        master_key: str | None,
        cache: KeyCacheConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._master_hash = hash_key(master_key) if master_key else None
        self._cfg = cache
        self._clock = clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}
        self._last_used: dict[str, datetime] = {}

    async def authenticate(self, token: str) -> Principal:
        digest = hash_key(token[:MAX_TOKEN_LENGTH])
        if self._master_hash is not None and hmac.compare_digest(digest, self._master_hash):
            return MASTER
        now = self._clock()
        entry = self._cache.get(digest)
        if entry is not None and entry.fresh_until > now:
            principal = entry.principal
        else:
            principal = await self._load(digest, entry)
        if principal is None or (principal.expires_at is not None and principal.expires_at <= time.time()):
            raise AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        if principal.key_id is not None:
            self._last_used[principal.key_id] = datetime.now(UTC)
        return principal

    async def _load(self, digest: str, stale: _Entry | None) -> Principal | None:
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            principal = await self._query(digest)
        except SQLAlchemyError as exc:
            # The database is down: keys we already trusted keep working, unknown keys fail closed.
            if stale is not None:
                future.set_result(stale.principal)
                return stale.principal
            log.warning("key lookup failed", error=type(exc).__name__)
            error = Overloaded("Cannot verify the API key right now; try again shortly.", code="auth_unavailable")
            future.set_exception(error)
            future.exception()  # mark retrieved: concurrent waiters get it through shield, others none
            raise error from exc
        finally:
            self._pending.pop(digest, None)
        ttl = self._cfg.ttl_seconds if principal is not None else self._cfg.negative_ttl_seconds
        self._remember(digest, _Entry(principal, self._clock() + ttl))
        future.set_result(principal)
        return principal

    async def _query(self, digest: str) -> Principal | None:
        async with self.db.session() as session:
            key = await KeyRepository(session).by_hash(digest)
            if key is None or not hmac.compare_digest(key.key_hash, digest):
                return None
            workspace = await session.get(Workspace, key.workspace_id)
            if key.user_id is not None:  # a key stops with its owner's account
                owner = await session.get(User, key.user_id)
                if owner is None or owner.status != "active":
                    return None
            return principal_for(key, workspace_disabled=workspace is None or workspace.disabled_at is not None)

    def _remember(self, digest: str, entry: _Entry) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self._cfg.max_entries:
            self._cache.popitem(last=False)

    def forget(self, key_hash: str | None = None) -> None:
        """Drop one cached key (or all of them) so the next use re-reads the database."""
        if key_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(key_hash, None)

    def take_last_used(self) -> dict[str, datetime]:
        taken, self._last_used = self._last_used, {}
        return taken

    async def flush_last_used(self) -> None:
        taken = self.take_last_used()
        if not taken:
            return
        try:
            async with self.db.session() as session:
                await KeyRepository(session).touch(taken)
        except SQLAlchemyError as exc:
            log.warning("could not record key last-use times", error=type(exc).__name__)
            for key_id, when in taken.items():
                self._last_used.setdefault(key_id, when)
