"""Cross-replica invalidation against the real Redis: a replica that starts (or reconnects) listening catches up on
everything it may have missed, once Redis has confirmed the subscription, and then applies each change it hears."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from sluice.identity.invalidation import Invalidation, notify_replicas
from tests.support.services import REDIS_URL, require_redis


class Recorder:
    """Stands in for the caches and reloaders a running gateway hands to :class:`Invalidation`: records calls."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.keys = self._Forgets(self.events, "keys")
        self.users = self._Forgets(self.events, "users")

    class _Forgets:
        def __init__(self, events: list[str], name: str) -> None:
            self.events, self.name = events, name

        def forget(self, ident: str | None = None) -> None:
            self.events.append(self.name if ident is None else f"{self.name}:{ident}")

    async def reload_rules(self) -> None:
        self.events.append("rules")

    async def reload_models(self) -> None:
        self.events.append("models")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    require_redis()
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def listening(redis: Redis) -> AsyncIterator[tuple[Invalidation, Recorder]]:
    record = Recorder()
    invalidation = Invalidation(record.keys, record.users, record.reload_rules, redis)  # type: ignore[arg-type]
    invalidation.reloaders["models"] = record.reload_models
    task = asyncio.create_task(invalidation.listen_forever())
    try:
        assert await invalidation.wait_listening(10), "not subscribed within 10 s"
        yield invalidation, record
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_subscribed_replica_has_caught_up_on_every_kind_of_state(
    listening: tuple[Invalidation, Recorder],
) -> None:
    # Rules and run-time models changed while it was not listening would otherwise wait for the 15 s refresh.
    _, record = listening
    assert record.events[:4] == ["keys", "users", "rules", "models"]


async def test_a_change_published_after_the_subscription_is_applied(listening: tuple[Invalidation, Recorder]) -> None:
    _, record = listening
    assert await notify_replicas(REDIS_URL, "key", "a-hash-of-the-test")
    deadline = time.monotonic() + 10
    while "keys:a-hash-of-the-test" not in record.events:
        assert time.monotonic() < deadline, "the change was not applied within 10 s"
        await asyncio.sleep(0.01)


async def test_waiting_to_listen_is_bounded_when_redis_cannot_be_reached() -> None:
    record = Recorder()
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    invalidation = Invalidation(record.keys, record.users, record.reload_rules, unreachable)  # type: ignore[arg-type]
    task = asyncio.create_task(invalidation.listen_forever())
    try:
        assert not await invalidation.wait_listening(0.2)
        assert record.events == []  # nothing caught up without a subscription
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await unreachable.aclose()
