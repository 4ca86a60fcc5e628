"""Dropping cached identity on every replica when it changes.

A change (key revoked, user disabled, workspace disabled, IP rules edited) is applied to this replica's caches at
once and published on a Redis channel when Redis is configured; every other replica applies it on receipt, so the
bound is the pub/sub delivery time (milliseconds). Without Redis, or if a message is lost while Redis is down,
the caches' own lifetimes bound it: ``key_cache.ttl_seconds`` and ``auth.user_cache_ttl_seconds`` (30 s by
default), and the rules refresh every 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from sluice.store.db import LOOKUP_ERRORS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sluice.identity.keys import KeyResolver
    from sluice.identity.users import UserResolver

log = structlog.get_logger("sluice.invalidation")

CHANNEL = "sluice:identity:invalidate"
RECONNECT_SECONDS = 1.0
LISTEN_WAIT_SECONDS = 5.0  # how long a starting replica waits to hear changes before it serves anyway

Announce = Callable[[str, str | None], Awaitable[None]]
"""How a service makes a change known: ``(kind, ident)``, e.g. ``("key", <hash>)``, ``("user", <id>)``, ``("rules",
None)``. A running gateway applies it and tells the other replicas (:meth:`Invalidation.publish`); the CLI only
tells the running gateways (:meth:`ReplicaNotice.publish`)."""


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
        # Other caches of users and workspaces (the service tokens'), dropped with the key and session caches.
        self.forgetters: list[Callable[[], None]] = []
        self.listening = asyncio.Event()  # set while Redis delivers every change to this replica

    async def publish(self, kind: str, ident: str | None = None) -> None:
        """Apply here, then tell the other replicas (best effort: their cache lifetimes are the backstop)."""
        from redis.exceptions import RedisError  # imported here: the CLI may never need redis

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
            for forget in self.forgetters:
                forget()
        elif kind == "rules":
            await self.reload_rules()
        elif kind in self.reloaders:
            await self.reloaders[kind]()

    async def _guarded(self, what: str, work: Awaitable[None]) -> None:
        """Apply a change; a failure (the database is down) must not end the listener. Caches are dropped before
        any reload, and the periodic refresh catches the reloads up after the outage."""
        try:
            await work
        except LOOKUP_ERRORS as exc:
            log.warning("could not apply an announced change", change=what, error=type(exc).__name__)

    async def catch_up(self) -> None:
        """Apply every change that may have been published while this replica was not listening: drop the cached
        keys and users, reload the rules and every other announced state."""
        self.keys.forget()
        self.users.forget()
        for forget in self.forgetters:
            forget()
        await self.reload_rules()
        for reload in self.reloaders.values():
            await reload()

    async def wait_listening(self, seconds: float = LISTEN_WAIT_SECONDS) -> bool:
        """Wait (bounded) until Redis delivers changes to this replica; False if it does not yet (the listener
        keeps trying, and catches up once it is subscribed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), seconds)
        return self.listening.is_set()

    async def listen_forever(self) -> None:
        from redis.exceptions import RedisError  # imported here: the CLI may never need redis

        assert self.redis is not None
        while True:
            try:
                pubsub = self.redis.pubsub()
                try:
                    await pubsub.subscribe(CHANNEL)  # only sent: Redis confirms it with a "subscribe" message
                    async for message in pubsub.listen():
                        if message.get("type") == "subscribe":
                            # From here on Redis delivers every change; whatever came before, catch up on once.
                            # (Catching up as the command is sent would miss a change published before Redis
                            # ran it.)
                            await self._guarded("catch-up", self.catch_up())
                            self.listening.set()
                        elif message.get("type") == "message":
                            data = message["data"]
                            text = data.decode() if isinstance(data, bytes) else str(data)
                            kind, _, ident = text.partition(":")
                            await self._guarded(kind, self.apply(kind, ident or None))
                finally:
                    self.listening.clear()
                    await pubsub.aclose()
            except (RedisError, OSError) as exc:
                log.warning("identity invalidation channel lost; retrying", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)


async def notify_replicas(redis_url: str | None, kind: str, ident: str | None = None) -> bool:
    """Tell running gateways about a change made outside them (the CLI); False if there is no Redis to tell."""
    from redis.exceptions import RedisError  # imported here: the CLI may never need redis

    if not redis_url:
        return False
    from redis.asyncio import Redis  # the CLI's commands that never announce do not load the client

    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        await redis.publish(CHANNEL, f"{kind}:{ident or ''}")
        return True
    except (RedisError, OSError) as exc:
        log.warning("could not notify running gateways", error=type(exc).__name__)
        return False
    finally:
        await redis.aclose()


class ReplicaNotice:
    """Tells running gateways about changes the CLI made, over Redis when ``redis_url`` is set."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.sent = False  # some gateway was told (so the operator can be told so)

    async def publish(self, kind: str, ident: str | None = None) -> None:
        if await notify_replicas(self.redis_url, kind, ident):
            self.sent = True
