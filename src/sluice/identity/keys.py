"""API keys: generation, hashing, and resolution to a Principal from an in-process cache.

Keys carry 256 random bits behind a visible ``sk-sl-`` prefix and are stored only as SHA-256 hashes (a fast hash is
right for high-entropy secrets; passwords get argon2id). Resolution is a dict lookup while the cache entry is
fresh; on a miss one database query runs, shared by every concurrent request presenting the same key. Garbage,
SQL, wrong and revoked keys all take the same path (hash, cache, the same single query finding no row), so they
answer alike. What a found key may do is recomputed from its owner's current standing
(:mod:`sluice.identity.standing`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from sluice.config import KeyCacheConfig
from sluice.errors import AuthenticationFailed
from sluice.identity.key_repository import KeyRepository
from sluice.identity.lookups import OUTAGE_RECHECK_SECONDS, SharedLookups, StoreUnavailable, auth_unavailable
from sluice.identity.principal import MASTER, Principal
from sluice.identity.standing import KeyStanding, effective_principal
from sluice.store.db import LOOKUP_ERRORS, Database

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


def principal_for(standing: KeyStanding | None) -> Principal | None:
    """The principal a stored key stands for now (see :mod:`sluice.identity.standing`), or None."""
    return effective_principal(standing) if standing is not None else None


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
        self._lookups: SharedLookups[str, Principal | None] = SharedLookups(db.request_deadline)
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
        if stale is not None and self._lookups.running(digest):
            return stale.principal  # a refresh is under way (the database may be slow): known keys do not wait
        try:
            return await self._lookups.wait(digest, lambda: self._query_and_remember(digest))
        except StoreUnavailable as exc:
            if stale is not None:
                # The database is down or hung: keys we already trusted keep working however long that lasts,
                # and are re-read every few seconds so they are current again once it is back.
                stale.fresh_until = self._clock() + OUTAGE_RECHECK_SECONDS
                return stale.principal
            raise auth_unavailable("Cannot verify the API key right now; try again shortly.") from exc

    async def _query_and_remember(self, digest: str) -> Principal | None:
        principal = await self._query(digest)
        ttl = self._cfg.ttl_seconds if principal is not None else self._cfg.negative_ttl_seconds
        self._remember(digest, _Entry(principal, self._clock() + ttl))
        return principal

    async def _query(self, digest: str) -> Principal | None:
        """One query whatever the key (unknown, revoked, owner gone or fine): see ``KeyRepository.standing``."""
        async with self.db.session() as session:
            standing = await KeyRepository(session).standing(key_hash=digest)
        if standing is None or not hmac.compare_digest(standing.key.key_hash, digest):
            return None
        return principal_for(standing)

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

    async def close(self) -> None:
        await self._lookups.close()

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
        except LOOKUP_ERRORS as exc:
            log.warning("could not record key last-use times", error=type(exc).__name__)
            for key_id, when in taken.items():
                self._last_used.setdefault(key_id, when)
