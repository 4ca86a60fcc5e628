"""Dropping cached identity on every replica when it changes.

A change (key revoked, user disabled, workspace disabled, IP rules edited) is applied to this replica's caches at
once and published on a Redis channel when Redis is configured; every other replica applies it on receipt, so the
bound is the pub/sub delivery time (milliseconds). Without Redis, or if a message is lost while Redis is down,
the caches' own lifetimes bound it: ``key_cache.ttl_seconds`` and ``auth.user_cache_ttl_seconds`` (30 s by
default), and the rules refresh every 15 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sluice.identity.keys import KeyResolver
from sluice.identity.users import UserResolver

log = structlog.get_logger("sluice.invalidation")

CHANNEL = "sluice:identity:invalidate"
RECONNECT_SECONDS = 1.0


class Invalidation:
    def __init__(
        self,
        keys: KeyResolver,
        users: UserResolver,
        reload_rules: Callable[[], Awaitable[None]],
        redis: Redis | None = None,
    ) -> None:
        self.keys = keys
        self.users = users
        self.reload_rules = reload_rules
        self.redis = redis
        # Other state replicas reload on an announcement of the same kind (e.g. "models").
        self.reloaders: dict[str, Callable[[], Awaitable[None]]] = {}

    async def publish(self, kind: str, ident: str | None = None) -> None:
        """Apply here, then tell the other replicas (best effort: their cache lifetimes are the backstop)."""
        await self.apply(kind, ident)
        if self.redis is None:
            return
        try:
            await self.redis.publish(CHANNEL, f"{kind}:{ident or ''}")
        except (RedisError, OSError) as exc:
            log.warning("could not publish an identity change", kind=kind, error=type(exc).__name__)

    async def apply(self, kind: str, ident: str | None) -> None:
        if kind == "key":
            self.keys.forget(ident or None)
        elif kind in ("user", "workspace"):  # keys follow their owner's and workspace's status
            self.keys.forget()
            self.users.forget()
        elif kind == "rules":
            await self.reload_rules()
        elif kind in self.reloaders:
            await self.reloaders[kind]()

    async def listen_forever(self) -> None:
        assert self.redis is not None
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                # Anything published while we were not listening: drop everything once.
                self.keys.forget()
                self.users.forget()
                try:
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        kind, _, ident = text.partition(":")
                        await self.apply(kind, ident or None)
                finally:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                log.warning("identity invalidation channel lost; retrying", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)


async def notify_replicas(redis_url: str | None, kind: str, ident: str | None = None) -> bool:
    """Tell running gateways about a change made outside them (the CLI); False if there is no Redis to tell."""
    if not redis_url:
        return False
    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        await redis.publish(CHANNEL, f"{kind}:{ident or ''}")
        return True
    except (RedisError, OSError) as exc:
        log.warning("could not notify running gateways", error=type(exc).__name__)
        return False
    finally:
        await redis.aclose()
