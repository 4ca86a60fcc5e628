"""Issue 23 item 8: while Redis is down each replica enforces its share (limits / live replicas, from heartbeats)."""

from __future__ import annotations

import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import Limits, Scope
from sluice.limits.redis import RedisLimitStore
from sluice.limits.store import Admitted, Denial, Reservation
from tests.support.services import REDIS_URL, require_redis

UTC = ZoneInfo("UTC")
NOW = 1_800_000_000.0


def _reservation(n: int, *scopes: Scope, cost: int = 0) -> Reservation:
    return Reservation(f"r{n}", list(scopes), 10, cost, NOW, lease=15)


async def _admitted(store: MemoryLimitStore, scope: Scope, tries: int, cost: int = 0) -> int:
    results = [await store.reserve(_reservation(i, scope, cost=cost), NOW) for i in range(tries)]
    assert all(isinstance(r, (Admitted, Denial)) for r in results)
    return sum(isinstance(r, Admitted) for r in results)


async def test_each_of_three_replicas_takes_a_third_of_the_budget_headroom() -> None:
    async def spent(_scope: Scope, _start: datetime, _end: datetime) -> int:
        return 300  # already spent when the outage began, by every replica together

    store = MemoryLimitStore(UTC, spent, replicas=lambda: 3)
    scope = Scope("key", "k", Limits(budget_nanos=1_200))
    assert await _admitted(store, scope, 10, cost=100) == 3  # (1200 - 300) / 3 = 300: three calls of 100


async def test_rates_and_concurrency_are_divided_rounding_up() -> None:
    store = MemoryLimitStore(UTC, replicas=lambda: 3)
    assert await _admitted(store, Scope("key", "r", Limits(rpm=10)), 10) == 4
    assert await _admitted(store, Scope("key", "c", Limits(concurrent=2)), 5) == 1


async def test_alone_a_replica_keeps_the_whole_limit() -> None:
    store = MemoryLimitStore(UTC, replicas=lambda: 1)
    assert await _admitted(store, Scope("key", "r", Limits(rpm=10)), 12) == 10


async def test_heartbeats_count_the_live_replicas() -> None:
    require_redis()
    redis = Redis.from_url(REDIS_URL)
    prefix = "sluice-test:hb:" + secrets.token_hex(4)

    async def nothing(_scope: Scope, _start: datetime, _end: datetime) -> int:
        return 0

    a, b = (RedisLimitStore(redis, prefix, UTC, nothing) for _ in range(2))
    try:
        assert await a.heartbeat(NOW, ttl=15) == 1
        assert await b.heartbeat(NOW + 1, ttl=15) == 2
        assert a.live_replicas == 1 and b.live_replicas == 2
        assert await a.heartbeat(NOW + 20, ttl=15) == 1  # b stopped beating: it has left the count
    finally:
        await redis.delete(f"{prefix}:replicas")
        await redis.aclose()
