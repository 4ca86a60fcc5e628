"""Analytics queries: totals, series, top spenders and records agree with the raw data, scoped by workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.accounting.analytics import Analytics, UsageFilter
from sluice.accounting.export import neutralise
from sluice.accounting.repository import UsageRepository
from sluice.store.db import Database
from tests.support.services import fresh_postgres_database

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def make(i: int) -> dict[str, Any]:
    created = DAY0 + timedelta(hours=i * 5)  # spread over ~10 days
    return {
        "id": f"a{i:05d}",
        "request_id": f"r{i}",
        "created_ts": created.timestamp(),
        "finished_ts": created.timestamp(),
        "principal_kind": "key",
        "key_id": f"k{i % 3}",
        "user_id": f"u{i % 2}",
        "workspace_id": "w1" if i % 4 else "w2",
        "surface": "openai",
        "endpoint": "chat",
        "model": "big" if i % 5 == 0 else "small",
        "deployment": "d",
        "provider": "p",
        "upstream_model": "m",
        "stream": False,
        "status": 500 if i % 10 == 0 else 200,
        "error_type": None,
        "prompt_tokens": 10 + i,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "estimated": False,
        "cost_nanos": 1000 * (i + 1),
        "cache_hit": False,
        "queue_wait_ms": 0.0,
        "ttft_ms": None,
        "latency_ms": 1.0,
        "overhead_ms": None,
    }


RECORDS = [make(i) for i in range(48)]


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async def seed(url: str) -> Database:
        database = Database(url)
        await database.migrate()
        async with database.session() as session:
            repo = UsageRepository(session)
            await repo.add_to_rollup(await repo.insert_new(RECORDS))
        return database

    if request.param == "sqlite":
        database = await seed(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        yield database
        await database.close()
    else:
        async with fresh_postgres_database() as url:
            database = await seed(url)
            yield database
            await database.close()


def expected(pred: Any) -> dict[str, int]:
    rows = [r for r in RECORDS if pred(r)]
    return {
        "requests": len(rows),
        "cost": sum(r["cost_nanos"] for r in rows),
        "errors": sum(1 for r in rows if r["status"] >= 400),
    }


async def test_totals_from_rollup_and_raw_agree(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=30))
    raw = UsageFilter(DAY0 + timedelta(minutes=1), DAY0 + timedelta(days=30))  # not day-aligned: raw path
    async with db.session() as session:
        daily = await Analytics(session).totals(flt)
        exact = await Analytics(session).totals(raw)
    want = expected(lambda r: True)
    assert (daily.requests, daily.cost_nanos, daily.errors) == (want["requests"], want["cost"], want["errors"])
    # the raw range starts one minute later and so misses record 0
    assert exact.requests == want["requests"] - 1 and exact.cost_nanos == want["cost"] - 1000


async def test_workspace_scope_hides_other_workspaces(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=30), workspace_ids=frozenset({"w2"}))
    async with db.session() as session:
        analytics = Analytics(session)
        totals = await analytics.totals(flt)
        top_keys = await analytics.top(flt, "key")
        records = await analytics.records(flt, limit=1000)
    assert totals.requests == expected(lambda r: r["workspace_id"] == "w2")["requests"]
    assert {r.workspace_id for r in records} == {"w2"}
    assert sum(t["requests"] for t in top_keys) == totals.requests


async def test_daily_series_by_model(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=30))
    async with db.session() as session:
        series = await Analytics(session).series(flt, "day", "model")
    assert sum(p["requests"] for p in series) == len(RECORDS)
    big = sum(p["cost_nanos"] for p in series if p["group"] == "big")
    assert big == expected(lambda r: r["model"] == "big")["cost"]
    assert [p["bucket"] for p in series] == sorted(p["bucket"] for p in series)


async def test_hourly_series_buckets_by_hour(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=1))
    async with db.session() as session:
        series = await Analytics(session).series(flt, "hour")
    assert [p["bucket"] for p in series] == [
        "2026-11-01T00:00:00Z",
        "2026-11-01T05:00:00Z",
        "2026-11-01T10:00:00Z",
        "2026-11-01T15:00:00Z",
        "2026-11-01T20:00:00Z",
    ]
    with pytest.raises(ValueError):
        async with db.session() as session:
            await Analytics(session).series(UsageFilter(DAY0, DAY0 + timedelta(days=40)), "hour")


async def test_top_spenders_order(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=30))
    async with db.session() as session:
        top = await Analytics(session).top(flt, "user", "cost", limit=2)
    costs = [t["cost_nanos"] for t in top]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] == max(expected(lambda r, u=u: r["user_id"] == u)["cost"] for u in ("u0", "u1"))


async def test_streamed_export_visits_every_record_once(db: Database) -> None:
    flt = UsageFilter(DAY0, DAY0 + timedelta(days=30))
    seen: list[str] = []
    async with db.session() as session:
        async for batch in Analytics(session).stream_records(flt, batch=7):
            seen.extend(r.id for r in batch)
    assert sorted(seen) == sorted(r["id"] for r in RECORDS) and len(seen) == len(set(seen))


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    for text in ("=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"):
        assert neutralise(text) == "'" + text
    for text in ("gpt-4o", "req-=1", "", "1e-3", " =1"):
        assert neutralise(text) == text


@pytest.fixture(params=["sqlite", "postgresql"])
async def mixed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A day of traffic beside look-ups (model lists, queue places) and a call the client left (499)."""
    records = [
        {**make(1), "id": "t-ok", "status": 200},
        {**make(1), "id": "t-failed", "status": 502},
        {**make(1), "id": "t-stopped", "status": 499, "completion_tokens": 3},
        {**make(1), "id": "t-models", "endpoint": "models", "cost_nanos": 0},
        {**make(1), "id": "t-queue", "endpoint": "queue", "cost_nanos": 0},
    ]

    async def seed(url: str) -> Database:
        database = Database(url)
        await database.migrate()
        async with database.session() as session:
            repo = UsageRepository(session)
            await repo.add_to_rollup(await repo.insert_new(records))
        return database

    if request.param == "sqlite":
        database = await seed(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield database
        await database.close()
    else:
        async with fresh_postgres_database() as url:
            database = await seed(url)
            yield database
            await database.close()


async def test_look_ups_are_not_traffic_and_a_stopped_call_is_not_an_error(mixed: Database) -> None:
    day = UsageFilter(DAY0, DAY0 + timedelta(days=2))  # day-aligned: from the roll-up
    raw = UsageFilter(DAY0 + timedelta(seconds=1), DAY0 + timedelta(days=2))  # from the records
    async with mixed.session() as session:
        analytics = Analytics(session)
        for totals in (await analytics.totals(day), await analytics.totals(raw)):
            assert (totals.requests, totals.errors) == (3, 1)  # ok, failed, stopped; the 502 alone failed
        for granularity in ("day", "hour"):
            points = await analytics.series(day, granularity)  # type: ignore[arg-type]
            assert sum(p["requests"] for p in points) == 3 and sum(p["errors"] for p in points) == 1
        top = await analytics.top(day, "model", "requests")
        assert sum(r["requests"] for r in top) == 3
