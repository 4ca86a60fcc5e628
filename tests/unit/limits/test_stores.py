"""Limit stores: the same behaviour, exact windows, concurrency and budgets, from the in-process store and Redis.

The Redis runs talk to the real Redis on 127.0.0.1:6379 under a unique key prefix per test.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import Limits, Scope
from sluice.limits.redis import RedisLimitStore
from sluice.limits.store import Admitted, Denial, LimitStore, Reservation, Settlement
from tests.support.services import REDIS_URL, require_redis

UTC_ZONE = ZoneInfo("UTC")
NOW = 1_800_000_000.0
counter = iter(range(10**9))


def res(*scopes: Scope, tokens: int = 10, cost: int = 0, at: float = NOW) -> Reservation:
    return Reservation(f"r{next(counter)}", list(scopes), tokens, cost, at, lease=600)


StoreFactory = Callable[..., LimitStore]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    redis: Redis | None = None
    prefix = "sluice-test:" + secrets.token_hex(4)
    if request.param == "redis":
        require_redis()
        redis = Redis.from_url(REDIS_URL)

    def make(spent: int = 0, tz: ZoneInfo = UTC_ZONE) -> LimitStore:
        async def load(scope: Scope, start: datetime, end: datetime) -> int:
            return spent

        if redis is None:
            return MemoryLimitStore(tz, load)
        return RedisLimitStore(redis, prefix, tz, load)

    yield make
    if redis is not None:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_rpm_admits_exactly_the_limit_within_a_minute(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(rpm=3))
    results = [await s.reserve(res(key, at=NOW + i), NOW + i) for i in range(5)]
    assert [isinstance(r, Admitted) for r in results] == [True, True, True, False, False]
    denial = results[3]
    assert isinstance(denial, Denial) and denial.limit == "rpm" and denial.retry_after == 57.0
    assert isinstance(await s.reserve(res(key, at=NOW + 60), NOW + 60), Admitted)  # the first has left the window


async def test_tpm_is_settled_to_actual_tokens(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(tpm=100))
    first = res(key, tokens=90)
    assert isinstance(await s.reserve(first, NOW), Admitted)
    assert isinstance(await s.reserve(res(key, tokens=20), NOW), Denial)
    await s.settle(first, tokens=30, cost_nanos=0, now=NOW + 1)
    admitted = await s.reserve(res(key, tokens=20), NOW + 1)
    assert isinstance(admitted, Admitted) and admitted.tokens is not None and admitted.tokens.remaining == 50


async def test_concurrency_slot_is_freed_at_settlement(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(concurrent=1))
    first = res(key)
    assert isinstance(await s.reserve(first, NOW), Admitted)
    assert isinstance(await s.reserve(res(key), NOW), Denial)
    await s.settle(first, 0, 0, NOW)
    await s.settle(first, 0, 0, NOW)  # settling twice changes nothing
    assert isinstance(await s.reserve(res(key), NOW), Admitted)
    assert isinstance(await s.reserve(res(key), NOW), Denial)


async def test_fifty_concurrent_requests_with_budget_for_one(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000))
    results = await asyncio.gather(*(s.reserve(res(key, cost=1_000), NOW) for _ in range(50)))
    assert sum(isinstance(r, Admitted) for r in results) == 1
    denials = [r for r in results if isinstance(r, Denial)]
    assert all(d.limit == "budget" and d.scope == key for d in denials)


async def test_failed_request_releases_its_reservation(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000))
    failed = res(key, cost=1_000)
    assert isinstance(await s.reserve(failed, NOW), Admitted)
    await s.settle(failed, tokens=0, cost_nanos=0, now=NOW)
    assert isinstance(await s.reserve(res(key, cost=1_000), NOW), Admitted)


async def test_budget_counts_spend_already_recorded_before_a_restart(store: StoreFactory) -> None:
    s = store(spent=900)
    key = Scope("key", "k1", Limits(budget_nanos=1_000))
    assert isinstance(await s.reserve(res(key, cost=200), NOW), Denial)
    assert isinstance(await s.reserve(res(key, cost=100), NOW), Admitted)


async def test_budget_resets_with_the_period(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000, period="day"))
    spend = res(key, cost=1_000)
    assert isinstance(await s.reserve(spend, NOW), Admitted)
    await s.settle(spend, 10, 1_000, NOW)
    assert isinstance(await s.reserve(res(key, cost=1), NOW + 10), Denial)
    assert isinstance(await s.reserve(res(key, cost=1, at=NOW + 86_400), NOW + 86_400), Admitted)


async def test_all_scopes_or_none(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(rpm=10))
    workspace = Scope("workspace", "w1", Limits(rpm=1))
    assert isinstance(await s.reserve(res(key, workspace), NOW), Admitted)
    denial = await s.reserve(res(key, workspace), NOW)
    assert isinstance(denial, Denial) and denial.scope == workspace
    admitted = await s.reserve(res(key), NOW)  # the refused request took nothing from the key's window
    assert isinstance(admitted, Admitted) and admitted.requests is not None and admitted.requests.remaining == 8


@pytest.mark.parametrize("limit", [5, 60])
async def test_rpm_never_exceeded_in_any_window_under_bursts(store: StoreFactory, limit: int) -> None:
    s = store()
    key = Scope("key", "k1", Limits(rpm=limit))
    admitted: list[float] = []
    for second in range(0, 180):
        for _ in range(3):
            if isinstance(await s.reserve(res(key, at=NOW + second), NOW + second), Admitted):
                admitted.append(NOW + second)
    for start in range(0, 180):
        in_window = [t for t in admitted if NOW + start <= t < NOW + start + 60]
        assert len(in_window) <= limit


async def test_settlement_is_idempotent_across_replays(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000, concurrent=5))
    spend = res(key, cost=600)
    assert isinstance(await s.reserve(spend, NOW), Admitted)
    await s.settle(spend, 5, 600, NOW)
    await s.settle(spend, 5, 600, NOW)
    assert await s.spent(key, NOW) == 600
    if isinstance(s, MemoryLimitStore):
        return  # an in-process reservation cannot outlive its process, so it cannot be replayed
    spend.settled = False  # a replay from another process presents the same reservation again
    await s.settle(spend, 5, 600, NOW)
    assert await s.spent(key, NOW) == 600


async def test_abandoned_reservations_expire_with_their_lease(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000, concurrent=1))
    lost = Reservation("lost", [key], 10, 1_000, NOW, lease=30)  # its replica died; it is never settled
    assert isinstance(await s.reserve(lost, NOW), Admitted)
    assert isinstance(await s.reserve(res(key, cost=1), NOW + 10), Denial)
    if isinstance(s, MemoryLimitStore):
        return  # in-process reservations die with their process; only shared stores need leases
    assert isinstance(await s.reserve(res(key, cost=1, at=NOW + 31), NOW + 31), Admitted)


async def test_renewed_leases_hold_their_slot_and_budget_until_renewals_stop(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000, concurrent=1))
    running = Reservation("running", [key], 10, 1_000, NOW, lease=10)
    assert isinstance(await s.reserve(running, NOW), Admitted)
    for at in (NOW + 7, NOW + 14, NOW + 21):  # its replica renews it every third of the lease
        await s.renew([running], at)
    assert isinstance(await s.reserve(res(key, cost=1, at=NOW + 25), NOW + 25), Denial)  # still held at 25 > 10
    if isinstance(s, MemoryLimitStore):
        return  # in-process reservations live exactly as long as their calls
    # Renewals stopped at 21 (the replica died): slot and budget are back one lease later.
    assert isinstance(await s.reserve(res(key, cost=1, at=NOW + 32), NOW + 32), Admitted)


async def test_free_calls_and_huge_budgets_settle(store: StoreFactory) -> None:
    """A zero-cost reservation (a model without a price) and amounts beyond 2**53 settle like any other."""
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=10**18, tpm=10**12))
    for cost in (0, 0, 3 * 10**17):
        reservation = res(key, tokens=100, cost=cost)
        assert isinstance(await s.reserve(reservation, NOW), Admitted)
        await s.settle(reservation, tokens=40, cost_nanos=cost, now=NOW)
        assert reservation.settled
    assert await s.spent(key, NOW) in (0, 3 * 10**17)  # an unloaded period counts from the records instead
    assert isinstance(await s.reserve(res(key, cost=7 * 10**17), NOW), Admitted)


def _at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


# (zone, when the whole budget is spent, last moment of that local day, first moment of the next), all UTC.
RESETS = {
    # Tokyo has no DST: its midnight is 15:00 UTC.
    "tokyo-midnight": ("Asia/Tokyo", _at(2026, 3, 10, 14, 59, 58), _at(2026, 3, 10, 14, 59, 59), _at(2026, 3, 10, 15)),
    # Berlin's 29 March 2026 has 23 hours (02:00 CET → 03:00 CEST): it ends at 22:00 UTC, not a day after 23:00.
    "berlin-spring": ("Europe/Berlin", _at(2026, 3, 28, 23, 30), _at(2026, 3, 29, 21, 59, 59), _at(2026, 3, 29, 22)),
    # Berlin's 25 October 2026 has 25 hours (03:00 CEST → 02:00 CET): it ends at 23:00 UTC, an hour past 24 h.
    "berlin-autumn": ("Europe/Berlin", _at(2026, 10, 24, 22, 30), _at(2026, 10, 25, 22, 59, 59), _at(2026, 10, 25, 23)),
}


@pytest.mark.parametrize("case", sorted(RESETS))
async def test_a_daily_budget_resets_at_local_midnight_of_its_zone(store: StoreFactory, case: str) -> None:
    zone, spent_at, last_second, next_day = RESETS[case]
    s = store(tz=ZoneInfo(zone))
    key = Scope("key", "k1", Limits(budget_nanos=1_000, period="day"))
    spend = res(key, cost=1_000, at=spent_at)
    assert isinstance(await s.reserve(spend, spent_at), Admitted)
    await s.settle(spend, 10, 1_000, spent_at)
    refused = await s.reserve(res(key, cost=1, at=last_second), last_second)
    assert isinstance(refused, Denial) and refused.limit == "budget"
    assert refused.retry_after == 1.0  # one second to the zone's midnight
    assert isinstance(await s.reserve(res(key, cost=1, at=next_day), next_day), Admitted)
    assert await s.spent(key, next_day) == 0


async def test_a_weekly_budget_resets_on_monday_in_the_zone(store: StoreFactory) -> None:
    s = store(tz=ZoneInfo("Asia/Tokyo"))
    key = Scope("key", "k1", Limits(budget_nanos=1_000, period="week"))
    sunday_night = _at(2026, 3, 15, 14, 59, 59)  # Sunday 23:59:59 in Tokyo
    spend = res(key, cost=1_000, at=sunday_night - 3600)
    assert isinstance(await s.reserve(spend, sunday_night - 3600), Admitted)
    await s.settle(spend, 10, 1_000, sunday_night - 3600)
    assert isinstance(await s.reserve(res(key, cost=1, at=sunday_night), sunday_night), Denial)
    assert isinstance(await s.reserve(res(key, cost=1, at=sunday_night + 1), sunday_night + 1), Admitted)


async def test_deferred_settlements_replayed_later_count_once(store: StoreFactory) -> None:
    s = store()
    key = Scope("key", "k1", Limits(budget_nanos=1_000, concurrent=1))
    late = res(key, cost=600)
    assert isinstance(await s.reserve(late, NOW), Admitted)
    replay = [Settlement(late, 5, 400, NOW + 1)]
    await s.settle_many(replay)
    if not isinstance(s, MemoryLimitStore):  # a shared store may be handed the same settlement twice
        late.settled = False  # (say, a crash between a replay and its bookkeeping) and counts it once
        await s.settle_many(replay)
    assert isinstance(await s.reserve(res(key, cost=600), NOW + 2), Admitted)  # slot and reservation released
    assert await s.spent(key, NOW + 2) == 400
