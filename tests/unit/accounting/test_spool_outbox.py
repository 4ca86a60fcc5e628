"""The usage spool survives kill -9; the shipper is idempotent and keeps records through a database outage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError

from sluice.accounting import service as accounting_service
from sluice.accounting.outbox import Shipper
from sluice.accounting.repository import UsageRepository
from sluice.accounting.service import Accounting
from sluice.accounting.spool import Spool
from sluice.limits.policy import Limits, Scope
from sluice.routing.catalog import ModelCatalog
from sluice.store.db import Database
from sluice.store.models import UsageDaily, UsageRecord


def record(i: int, cost: int = 100, key: str = "k1") -> dict[str, Any]:
    created = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp() + i
    return {
        "id": f"u{i:06d}",
        "request_id": f"r{i}",
        "created_ts": created,
        "finished_ts": created,
        "principal_kind": "key",
        "key_id": key,
        "user_id": None,
        "workspace_id": "default",
        "surface": "openai",
        "endpoint": "chat",
        "model": "m",
        "deployment": "d",
        "provider": "p",
        "upstream_model": "m",
        "stream": False,
        "status": 200,
        "error_type": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "estimated": False,
        "cost_nanos": cost,
        "cache_hit": False,
        "queue_wait_ms": 0.0,
        "ttft_ms": 1.0,
        "latency_ms": 2.0,
        "overhead_ms": 0.1,
    }


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from sluice.accounting.spool import Spool
    from tests.unit.accounting.test_spool_outbox import record

    async def main():
        spool = Spool(Path(sys.argv[1]))
        spool.start()
        i = 0
        while True:
            await spool.append(record(i))
            print(i, flush=True)  # acknowledged: committed
            i += 1

    asyncio.run(main())
    """
)


def test_acknowledged_records_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 20
    while acknowledged < 300 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert acknowledged >= 300
    rows = Spool(path).read_unshipped(100_000)
    ids = {r.id for r in rows}
    assert all(f"u{i:06d}" in ids for i in range(acknowledged + 1))


async def test_group_commit_writes_everything_it_acknowledges(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.start()
    await asyncio.gather(*(spool.append(record(i)) for i in range(500)))
    spool.close()
    assert spool.backlog() == 500


async def _db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'main.db'}")
    await db.migrate()
    return db


async def _totals(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(UsageRecord))).scalar_one()
        daily = (await session.execute(select(UsageDaily))).scalars().all()
    return count, sum(d.requests for d in daily), sum(d.cost_nanos for d in daily)


async def test_shipping_is_idempotent(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    spool = Spool(tmp_path / "spool.db")
    spool.start()
    for i in range(10):
        await spool.append(record(i))
    shipper = Shipper(spool, db)
    # A crash after the database commit but before the spool delete: simulate by shipping without deleting.
    rows = spool.read_unshipped(100)
    async with db.session() as session:
        repo = UsageRepository(session)
        await repo.add_to_rollup(await repo.insert_new([r.body for r in rows]))
    assert await shipper.ship_once() == 10  # replays all ten: inserts none, deletes them from the spool
    assert await _totals(db) == (10, 10, 1000)
    assert spool.backlog() == 0
    spool.close()
    await db.close()


async def test_database_outage_keeps_records_in_the_spool(tmp_path: Path) -> None:
    db = await _db(tmp_path)
    spool = Spool(tmp_path / "spool.db")
    spool.start()
    for i in range(5):
        await spool.append(record(i))
    await db.close()
    (tmp_path / "main.db").rename(tmp_path / "main.db.away")
    (tmp_path / "main.db").mkdir()  # every connection attempt now fails
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'main.db'}")
    with pytest.raises(SQLAlchemyError):
        await Shipper(spool, broken).ship_once()
    assert spool.backlog() == 5
    await broken.close()
    (tmp_path / "main.db").rmdir()
    (tmp_path / "main.db.away").rename(tmp_path / "main.db")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'main.db'}")
    assert await Shipper(spool, db).drain(10)
    assert await _totals(db) == (5, 5, 500)
    spool.close()
    await db.close()


async def test_batches_of_every_size_prepare_only_a_few_distinct_insert_statements(tmp_path: Path) -> None:
    """Each distinct SQL text is a prepared statement the driver keeps; batch-sized statements grew memory without
    bound in practice (a leak of ~1.3 KB per shipped record), so batches go out in a few fixed chunk sizes."""
    db = await _db(tmp_path)
    statements: set[str] = set()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USAGE_RECORDS"):
            statements.add(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        first = 0
        for size in range(1, 130):
            batch = [record(i) for i in range(first, first + size)]
            first += size
            async with db.session() as session:
                fresh = await UsageRepository(session).insert_new(batch)
            assert [r["id"] for r in fresh] == [r["id"] for r in batch]
        async with db.session() as session:  # a replay of the last batch inserts nothing
            assert await UsageRepository(session).insert_new(batch) == []
    finally:
        await db.close()
    assert len(statements) <= 7, f"{len(statements)} distinct INSERT statements for batch sizes 1..129"


@pytest.mark.parametrize("ship_after", ["nothing", "existing_ids", "spent"])
async def test_spend_counts_a_record_once_wherever_the_shipper_moves_it_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ship_after: str
) -> None:
    """The spool and the database are read one after the other; the shipper may move the records in between."""
    db = await _db(tmp_path)
    accounting = Accounting(db, tmp_path, ModelCatalog({}))
    accounting.spool.start()
    for i in range(3):
        await accounting.spool.append(record(i, cost=100))
    shipper = Shipper(accounting.spool, db)

    def shipping_after(name: str) -> None:
        original = getattr(UsageRepository, name)

        async def then_ship(self: UsageRepository, *args: Any, **kwargs: Any) -> Any:
            result = await original(self, *args, **kwargs)
            assert await shipper.ship_once() == 3  # commits in its own session, then empties the spool
            return result

        monkeypatch.setattr(UsageRepository, name, then_ship)

    if ship_after != "nothing":
        shipping_after(ship_after)
    day = datetime(2026, 11, 24, tzinfo=UTC)
    spent = await accounting.spent(Scope("key", "k1", Limits(budget_nanos=1)), day, day + timedelta(days=1))
    assert spent == 300
    accounting.spool.close()
    await db.close()


async def test_spend_of_a_large_backlog_may_count_twice_but_never_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounting_service, "EXCLUDE_MAX", 2)  # three unshipped records: above the bound
    db = await _db(tmp_path)
    accounting = Accounting(db, tmp_path, ModelCatalog({}))
    accounting.spool.start()
    for i in range(3):
        await accounting.spool.append(record(i, cost=100))
    day = datetime(2026, 11, 24, tzinfo=UTC)
    scope = Scope("key", "k1", Limits(budget_nanos=1))
    assert await accounting.spent(scope, day, day + timedelta(days=1)) == 300
    accounting.spool.close()
    await db.close()
