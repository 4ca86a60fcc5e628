"""p50/p95 latency per series bucket: the histogram's arithmetic, the daily roll-up and the hourly raw path agreeing
with the exact percentiles of the stored records (within one bucket), failures left out, and migration 0007 filling
the histogram of records stored before it."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection

from sluice.accounting import latency
from sluice.accounting.analytics import Analytics, UsageFilter, bucket_expression
from sluice.accounting.repository import UsageRepository
from sluice.store.db import Database, alembic_config
from sluice.store.models import UsageDaily, UsageRecord
from tests.support.services import fresh_postgres_database

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(i: int, at: datetime, latency_ms: float, status: int = 200, model: str = "m") -> dict[str, Any]:
    return {
        "id": f"l{i:06d}",
        "request_id": f"q{i}",
        "created_ts": at.timestamp(),
        "finished_ts": at.timestamp() + latency_ms / 1000,
        "principal_kind": "key",
        "key_id": "k",
        "user_id": "u",
        "workspace_id": "w",
        "surface": "openai",
        "endpoint": "chat",
        "model": model,
        "deployment": "d",
        "provider": "p",
        "upstream_model": "m",
        "stream": True,
        "status": status,
        "error_type": None,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cached_tokens": 0,
        "estimated": False,
        "cost_nanos": 1,
        "cache_hit": False,
        "queue_wait_ms": 0.0,
        "ttft_ms": None,
        "latency_ms": latency_ms,
        "overhead_ms": None,
    }


def exact(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q·n values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def within_its_bucket(estimate: float | None, truth: float) -> bool:
    """The estimate lies in the bucket the true value lies in (the histogram's promised precision)."""
    assert estimate is not None
    index = latency.bucket_of(truth)
    low = latency.BOUNDS_MS[index - 1] if index > 0 else 0.0
    high = latency.BOUNDS_MS[index] if index < len(latency.BOUNDS_MS) else float("inf")
    return low <= estimate <= high


# --- the histogram --------------------------------------------------------------------------------------------


def test_one_rollup_column_per_bucket_and_edges_that_grow_by_root_two() -> None:
    assert latency.BUCKETS == len(latency.COLUMNS) == 32
    assert latency.BOUNDS_MS[0] == 16.0 and latency.BOUNDS_MS[2] == 32.0 and latency.BOUNDS_MS[-1] > 500_000
    assert all(b / a == pytest.approx(2**0.5, rel=1e-3) for a, b in pairwise(latency.BOUNDS_MS))


@pytest.mark.parametrize(
    ("ms", "index"), [(0.0, 0), (15.99, 0), (16.0, 1), (22.0, 1), (22.7, 2), (32.0, 3), (10**9, 31)]
)
def test_a_latency_falls_in_the_bucket_whose_edges_hold_it(ms: float, index: int) -> None:
    assert latency.bucket_of(ms) == index


def test_percentiles_of_an_empty_histogram_are_unknown() -> None:
    assert latency.percentile([0] * latency.BUCKETS, 0.95) is None


def test_percentiles_interpolate_inside_the_bucket_and_stop_at_the_open_last_one() -> None:
    counts = [0] * latency.BUCKETS
    counts[latency.bucket_of(100.0)] = 10  # ten values in [90.51, 128)
    p50 = latency.percentile(counts, 0.5)
    assert p50 is not None and 90.5 < p50 < 128 and p50 == pytest.approx((90.51 + 128) / 2, abs=0.1)
    counts[-1] = 90  # most values beyond the last edge: reported at that edge, never invented above it
    assert latency.percentile(counts, 0.95) == latency.BOUNDS_MS[-1]


def test_percentiles_of_random_latencies_land_in_the_true_values_bucket() -> None:
    rng = random.Random(5)
    values = [rng.lognormvariate(6.5, 1.0) for _ in range(5000)]  # median ≈ 665 ms, a long tail
    counts = [0] * latency.BUCKETS
    for value in values:
        counts[latency.bucket_of(value)] += 1
    for q in (0.5, 0.95):
        assert within_its_bucket(latency.percentile(counts, q), exact(values, q))


# --- the series -------------------------------------------------------------------------------------------------

# Day 0: 200 answers between 50 ms and 5 s, and 40 fast failures that must not pull the percentiles down.
RNG = random.Random(11)
FAST_AND_SLOW = [RNG.uniform(50, 400) for _ in range(150)] + [RNG.uniform(2000, 5000) for _ in range(50)]
RECORDS = [record(i, DAY0 + timedelta(minutes=3 * i), ms) for i, ms in enumerate(FAST_AND_SLOW)]
RECORDS += [record(1000 + i, DAY0 + timedelta(minutes=5 * i), 1.0, status=502) for i in range(40)]
# Day 1: two models with very different speeds, in one hour.
RECORDS += [record(2000 + i, DAY0 + timedelta(days=1, seconds=i), 30.0 + i, model="quick") for i in range(20)]
RECORDS += [record(3000 + i, DAY0 + timedelta(days=1, seconds=i), 9000.0 + i, model="slow") for i in range(20)]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async def seed(url: str) -> Database:
        database = Database(url)
        await database.migrate()
        async with database.session() as session:
            repo = UsageRepository(session)
            # two shipments, as two replicas would make them: the counters add up
            await repo.add_to_rollup(await repo.insert_new(RECORDS[::2]))
            await repo.add_to_rollup(await repo.insert_new(RECORDS[1::2]))
        return database

    if request.param == "sqlite":
        database = await seed(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}")
        yield database
        await database.close()
    else:
        async with fresh_postgres_database() as url:
            database = await seed(url)
            yield database
            await database.close()


async def test_daily_series_reports_p50_and_p95_of_successful_requests(db: Database) -> None:
    async with db.session() as session:
        series = await Analytics(session).series(UsageFilter(DAY0, DAY0 + timedelta(days=2)), "day")
    first = series[0]
    assert first["requests"] == 240 and first["errors"] == 40
    assert within_its_bucket(first["latency_p50_ms"], exact(FAST_AND_SLOW, 0.5))
    assert within_its_bucket(first["latency_p95_ms"], exact(FAST_AND_SLOW, 0.95))
    assert first["latency_p95_ms"] > 2000  # the slow fifth shows in the tail, the 1 ms failures do not


async def test_hourly_series_agrees_with_the_daily_one_and_groups_by_model(db: Database) -> None:
    async with db.session() as session:
        analytics = Analytics(session)
        hourly = await analytics.series(
            UsageFilter(DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)), "hour", "model"
        )
        daily = await analytics.series(UsageFilter(DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)), "day", "model")
        quiet = await analytics.series(UsageFilter(DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)), "hour")
    assert {p["group"]: p["latency_p50_ms"] for p in hourly} == {p["group"]: p["latency_p50_ms"] for p in daily}
    by_model = {p["group"]: p for p in hourly}
    assert by_model["quick"]["requests"] == 20 and within_its_bucket(by_model["quick"]["latency_p95_ms"], 49.0)
    assert within_its_bucket(by_model["slow"]["latency_p50_ms"], 9010.0)
    assert [p["requests"] for p in quiet] == [40]  # ungrouped: one point for the hour


async def test_hourly_failures_count_as_requests_but_not_as_latency(db: Database) -> None:
    window = UsageFilter(DAY0, DAY0 + timedelta(hours=1))
    async with db.session() as session:
        hourly = await Analytics(session).series(window, "hour")
    (point,) = hourly
    answered = [r for r in RECORDS if r["status"] < 400 and r["created_ts"] < (DAY0 + timedelta(hours=1)).timestamp()]
    failed = [r for r in RECORDS if r["status"] >= 400 and r["created_ts"] < (DAY0 + timedelta(hours=1)).timestamp()]
    assert point["requests"] == len(answered) + len(failed) and point["errors"] == len(failed)
    assert within_its_bucket(point["latency_p50_ms"], exact([r["latency_ms"] for r in answered], 0.5))


async def test_a_bucket_of_failures_only_has_no_latency(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    await database.migrate()
    async with database.session() as session:
        repo = UsageRepository(session)
        await repo.add_to_rollup(await repo.insert_new([record(1, DAY0, 5.0, status=429)]))
    async with database.session() as session:
        analytics = Analytics(session)
        daily = await analytics.series(UsageFilter(DAY0, DAY0 + timedelta(days=1)), "day")
        hourly = await analytics.series(UsageFilter(DAY0, DAY0 + timedelta(days=1)), "hour")
    await database.close()
    for point in (daily[0], hourly[0]):
        assert point["requests"] == 1 and point["latency_p50_ms"] is None and point["latency_p95_ms"] is None


async def test_the_sql_bucket_is_the_python_bucket_at_every_edge(db: Database) -> None:
    values = [0.0, 10**9] + [b + d for b in latency.BOUNDS_MS for d in (-0.001, 0.0, 0.001)]
    async with db.session() as session:
        found = [
            (await session.execute(sa.select(bucket_expression(sa.literal(v, sa.Float))))).scalar_one() for v in values
        ]
    assert found == [latency.bucket_of(v) for v in values]


# --- migration 0007 -----------------------------------------------------------------------------------------


def _upgrade_to(revision: str) -> Any:
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    else:
        async with fresh_postgres_database() as url:
            yield url


async def test_migration_fills_the_histogram_of_records_stored_before_it(empty_url: str) -> None:
    database = Database(empty_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0005"))
    old = [record(i, DAY0 + timedelta(hours=i % 24), ms) for i, ms in enumerate(FAST_AND_SLOW)]
    old.append(record(999, DAY0, 1.0, status=500))
    sums = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos")
    daily_0005 = sa.table(
        "usage_daily",
        *(sa.column(c) for c in ("day", "workspace_id", "key_id", "user_id", "model", *sums, "latency_ms_sum")),
    )
    async with database.session() as session:
        await session.execute(sa.insert(UsageRecord.__table__), [_record_row(r) for r in old])
        dims = {"day": DAY0.date(), "workspace_id": "w", "key_id": "k", "user_id": "u", "model": "m"}
        await session.execute(sa.insert(daily_0005), [{**dims, **dict.fromkeys(sums, 0), "latency_ms_sum": 0.0}])
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade_to("0007"))
    async with database.session() as session:
        row = (await session.execute(sa.select(UsageDaily))).scalar_one()
    await database.close()
    counts = [getattr(row, name) for name in latency.COLUMNS]
    assert sum(counts) == len(FAST_AND_SLOW)  # the failure is not counted
    hundred = latency.bucket_of(100.0)
    assert counts[hundred] == sum(1 for v in FAST_AND_SLOW if latency.bucket_of(v) == hundred) > 0
    assert within_its_bucket(latency.percentile(counts, 0.95), exact(FAST_AND_SLOW, 0.95))


def _record_row(r: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in r.items() if k in UsageRecord.__table__.columns}
    row["created_at"] = datetime.fromtimestamp(r["created_ts"], UTC)
    row["finished_at"] = datetime.fromtimestamp(r["finished_ts"], UTC)
    return row
