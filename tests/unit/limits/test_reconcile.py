"""Settlements the shared store missed are kept on disk and replayed once, without counting anything twice.

The Redis store here is the shared Redis on 127.0.0.1 under a unique key prefix per test; "Redis is down" is a
store pointed at a port nothing listens on (no shared service is ever stopped).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from sluice.accounting.spool import Spool
from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import Limits, Scope
from sluice.limits.reconcile import DeferredSettlements, Reconciler
from sluice.limits.redis import RedisLimitStore
from sluice.limits.store import Admitted, Denial, Reservation, Settlement, StoreUnavailable
from tests.support.server import free_port
from tests.support.services import REDIS_URL, require_redis

UTC_ZONE = ZoneInfo("UTC")
NOW = 1_800_000_000.0
KEY = Scope("key", "k1", Limits(budget_nanos=1_000, tpm=10_000, period="day"))


class Records:
    """What the usage records say a scope spent (the loader both stores read a period's spend from)."""

    def __init__(self) -> None:
        self.spent = 0
        self.loads = 0

    async def load(self, scope: Scope, start: datetime, end: datetime) -> int:
        self.loads += 1
        return self.spent


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    require_redis()
    client = Redis.from_url(REDIS_URL)
    prefix = "sluice-test:" + secrets.token_hex(4)
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    spool = Spool(tmp_path / "spool.db")
    spool.start()
    yield spool
    spool.close()


def reservation(rid: str, cost: int = 300, tokens: int = 100, fallback: bool = False) -> Reservation:
    r = Reservation(rid, [KEY], tokens, cost, NOW, lease=600, fallback=fallback)
    r.period_keys[KEY.name] = "day:20270115T0000"
    return r


async def test_a_counter_loaded_after_the_outage_does_not_count_a_replayed_call_again(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    records = Records()
    store = RedisLimitStore(client, prefix, UTC_ZONE, records.load)
    during = reservation("during", cost=400)
    assert isinstance(await store.reserve(during, NOW), Admitted)
    # Redis restarts empty; the call's record (400) is in the usage records the counter is reloaded from.
    await client.delete(*[k async for k in client.scan_iter(match=prefix + "*")])
    records.spent = 400
    assert isinstance(await store.reserve(reservation("after", cost=100), NOW + 10), Admitted)
    await store.settle_many([Settlement(during, 50, 400, NOW + 1)])  # the replay arrives after the reload
    assert await store.spent(KEY, NOW + 10) == 400


async def test_a_counter_that_survived_the_outage_gets_the_replayed_cost(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    store = RedisLimitStore(client, prefix, UTC_ZONE, Records().load)
    during = reservation("during", cost=400)
    assert isinstance(await store.reserve(during, NOW), Admitted)
    await store.settle_many([Settlement(during, 50, 400, NOW + 1)])
    assert await store.spent(KEY, NOW + 2) == 400
    refused = await store.reserve(reservation("next", cost=700), NOW + 2)
    assert isinstance(refused, Denial) and refused.limit == "budget"


async def test_a_fallback_admission_carries_only_its_cost_to_redis(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    store = RedisLimitStore(client, prefix, UTC_ZONE, Records().load)
    seen = reservation("seen", cost=0, tokens=100)
    admitted = await store.reserve(seen, NOW)
    assert isinstance(admitted, Admitted) and admitted.tokens is not None and admitted.tokens.remaining == 9_900
    # Admitted by the per-replica fallback in the same second: Redis never held its 5000 tokens.
    await store.settle_many([Settlement(reservation("elsewhere", tokens=5_000, fallback=True), 20, 250, NOW)])
    after = await store.reserve(reservation("third", cost=0, tokens=100), NOW)
    assert isinstance(after, Admitted) and after.tokens is not None and after.tokens.remaining == 9_800
    assert await store.spent(KEY, NOW) == 250


async def test_deferred_settlements_survive_a_restart_and_replay_once(redis: tuple[Redis, str], tmp_path: Path) -> None:
    client, prefix = redis
    store = RedisLimitStore(client, prefix, UTC_ZONE, Records().load)
    held = [reservation(f"held-{i}") for i in range(3)]
    for r in held:
        assert isinstance(await store.reserve(r, NOW), Admitted)  # 900 of 1000 reserved
    first = Spool(tmp_path / "spool.db")
    first.start()
    deferred = DeferredSettlements(first)
    await deferred.open()
    for r in held:
        await deferred.add(Settlement(r, 10, 200, NOW + 1))
    await deferred.add(Settlement(held[0], 10, 200, NOW + 1))  # deferring the same call twice keeps one
    assert deferred.count == 3
    first.close()  # the process stops before Redis came back

    second = Spool(tmp_path / "spool.db")
    second.start()
    try:
        reconciler = Reconciler(store, DeferredSettlements(second), None)
        await reconciler.start()
        assert reconciler.pending == 3
        await reconciler.replay()
        assert reconciler.pending == 0
        await reconciler.replay()
        await reconciler.close()
    finally:
        second.close()
    assert await store.spent(KEY, NOW + 2) == 600  # each cost once; every reservation released
    assert isinstance(await store.reserve(reservation("fits", cost=400), NOW + 2), Admitted)
    assert isinstance(await store.reserve(reservation("over", cost=1), NOW + 2), Denial)


async def test_a_replay_while_redis_is_still_down_keeps_everything(spool: Spool) -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        store = RedisLimitStore(unreachable, "sluice-test", UTC_ZONE, Records().load)
        reconciler = Reconciler(store, DeferredSettlements(spool), None)
        await reconciler.deferred.open()
        await reconciler.defer(Settlement(reservation("waiting"), 10, 200, NOW))
        with pytest.raises(StoreUnavailable):
            await reconciler.replay()
        assert reconciler.pending == 1 and reconciler.degraded
    finally:
        await unreachable.aclose()


async def test_the_fallback_reads_spend_again_once_redis_is_back(spool: Spool) -> None:
    records = Records()
    fallback = MemoryLimitStore(UTC_ZONE, records.load)
    held = reservation("held", cost=300)
    assert isinstance(await fallback.reserve(held, NOW), Admitted)
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        reconciler = Reconciler(
            RedisLimitStore(unreachable, "t", UTC_ZONE, records.load), DeferredSettlements(spool), fallback
        )
        reconciler.degraded = True
        records.spent = 600  # other replicas spent 600 through Redis since this fallback last looked
        reconciler.came_back()
    finally:
        await unreachable.aclose()
    refused = await fallback.reserve(reservation("next", cost=200), NOW + 1)  # 600 spent + 300 held + 200 > 1000
    assert isinstance(refused, Denial) and refused.limit == "budget" and records.loads == 2
    await fallback.settle(held, 10, 100, NOW + 2)  # the reservation made before the refresh is still released
    assert isinstance(await fallback.reserve(reservation("fits", cost=300), NOW + 3), Admitted)


async def test_a_damaged_or_refused_settlement_never_blocks_the_others(redis: tuple[Redis, str], spool: Spool) -> None:
    client, prefix = redis
    store = RedisLimitStore(client, prefix, UTC_ZONE, Records().load)
    good = reservation("good", cost=300)
    assert isinstance(await store.reserve(good, NOW), Admitted)
    other = Scope("key", "k2", Limits(tpm=10))
    refused = Reservation("refused", [other], 5, 0, NOW, lease=600)
    await client.set(f"{prefix}:{{key:k2}}:tk", "not a hash")  # its settle script fails with WRONGTYPE
    reconciler = Reconciler(store, DeferredSettlements(spool), None)
    await reconciler.deferred.open()
    await reconciler.defer(Settlement(refused, 1, 0, NOW))
    await reconciler.defer(Settlement(good, 10, 250, NOW + 1))
    await spool.run(lambda conn: conn.execute("INSERT INTO deferred_settlements VALUES ('torn', 0, x'7b')"))
    reconciler.deferred.count += 1
    await reconciler.replay()
    assert reconciler.pending == 0 and not reconciler.degraded
    assert await store.spent(KEY, NOW + 2) == 250
