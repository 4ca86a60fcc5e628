"""Analytics at scale: seed a million usage records, then time the admin API's queries over them.

``python -m bench.analytics [--records 1000000] [--postgres URL]`` seeds a fresh SQLite database (and, with
``--postgres``, an empty PostgreSQL database) through the same repository the usage shipper uses (records plus the
daily roll-up), then runs each analytics query a few times and reports the median. Target (issue 5): under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.accounting.analytics import Analytics, UsageFilter
from sluice.accounting.repository import UsageRepository
from sluice.config import normalise_database_url, sqlite_url
from sluice.store.db import Database

BATCH = 10_000
DAYS = 30
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-70b", "llama-8b", "embed-small"]


def records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    start = end - DAYS * 86400
    out = []
    for i in range(count):
        created = rng.uniform(start, end)
        workspace = f"ws{rng.randrange(5)}"
        out.append(
            {
                "id": f"r{i:010d}",
                "request_id": f"q{i:010d}",
                "created_ts": created,
                "finished_ts": created + 0.5,
                "principal_kind": "key",
                "key_id": f"{workspace}-k{rng.randrange(10)}",
                "user_id": f"{workspace}-u{rng.randrange(4)}",
                "workspace_id": workspace,
                "surface": "openai",
                "endpoint": "chat",
                "model": rng.choice(MODELS),
                "deployment": "d",
                "provider": "p",
                "upstream_model": "u",
                "stream": rng.random() < 0.5,
                "status": 200 if rng.random() < 0.97 else 502,
                "error_type": None,
                "prompt_tokens": rng.randrange(10, 4000),
                "completion_tokens": rng.randrange(1, 800),
                "cached_tokens": 0,
                "estimated": False,
                "cost_nanos": rng.randrange(1000, 5_000_000),
                "cache_hit": False,
                "queue_wait_ms": 0.0,
                "ttft_ms": 120.0,
                "latency_ms": 500.0,
                "overhead_ms": 0.3,
            }
        )
    return out


async def seed(db: Database, count: int) -> float:
    started = time.perf_counter()
    for offset in range(0, count, BATCH):
        batch = records(min(BATCH, count - offset), seed=offset)
        for i, record in enumerate(batch):
            record["id"] = record["request_id"] = f"r{offset + i:010d}"
        async with db.session() as session:
            repo = UsageRepository(session)
            await repo.add_to_rollup(await repo.insert_new(batch))
    return time.perf_counter() - started


async def timed(db: Database, name: str, query: Any, repeat: int = 5) -> tuple[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        async with db.session() as session:
            await query(Analytics(session))
        samples.append(time.perf_counter() - started)
    return name, statistics.median(samples) * 1000


async def measure(url: str, count: int) -> list[tuple[str, float]]:
    db = Database(url)
    await db.migrate()
    seconds = await seed(db, count)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = UsageFilter(end - timedelta(days=DAYS), end)
    one_ws = UsageFilter(end - timedelta(days=DAYS), end, workspace_ids=frozenset({"ws1"}))
    week = UsageFilter(end - timedelta(days=7), end - timedelta(minutes=1), workspace_ids=frozenset({"ws2"}))
    key = UsageFilter(end - timedelta(days=DAYS), end - timedelta(hours=3), key_id="ws3-k4")
    results = [("seed (records + roll-up), s", seconds * 1000)]
    results.append(await timed(db, "totals, 30 days, all workspaces (roll-up)", lambda a: a.totals(month)))
    results.append(
        await timed(db, "daily series by model, 30 days, one workspace", lambda a: a.series(one_ws, "day", "model"))
    )
    results.append(await timed(db, "top 10 keys by cost, 30 days", lambda a: a.top(month, "key")))
    results.append(
        await timed(db, "hourly series, 7 days, one workspace (raw records)", lambda a: a.series(week, "hour"))
    )
    results.append(await timed(db, "totals, unaligned 30 days, one key (raw records)", lambda a: a.totals(key)))
    results.append(await timed(db, "newest 100 records, one workspace", lambda a: a.records(one_ws, 100)))
    await db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to measure as well")
    args = parser.parse_args()
    targets = [("SQLite", sqlite_url(Path(tempfile.mkdtemp(prefix="sluice-analytics-"))))]
    if args.postgres:
        targets.append(("PostgreSQL", normalise_database_url(args.postgres)))
    for name, url in targets:
        sys.stdout.write(f"\n{name}, {args.records:,} records over {DAYS} days\n\n| query | median ms |\n|---|---|\n")
        for query, ms in asyncio.run(measure(url, args.records)):
            value = f"{ms / 1000:.1f} s" if query.startswith("seed") else f"{ms:.1f}"
            sys.stdout.write(f"| {query.removesuffix(', s')} | {value} |\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
