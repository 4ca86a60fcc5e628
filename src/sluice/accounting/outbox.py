"""The shipper: moves usage records from the local spool to the database in batches, off the hot path.

Each batch is inserted with "ignore if the id exists" and folded into the daily roll-up in the same transaction,
counting only the rows that were really new; only then are the rows deleted from the spool. A crash between the
two steps makes the next run insert nothing and delete them: a record is never lost and never counted twice.
While the database is down the records wait in the spool and shipping retries with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.exc import SQLAlchemyError

from sluice.accounting.repository import UsageRepository
from sluice.accounting.spool import Spool
from sluice.store.db import Database

log = structlog.get_logger("sluice.outbox")

BATCH = 500
IDLE_PAUSE = 0.5
MAX_BACKOFF = 30.0


class Shipper:
    def __init__(self, spool: Spool, db: Database) -> None:
        self.spool = spool
        self.db = db
        self.failures = 0  # consecutive failed attempts (exported as a metric)
        self.shipped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sluice-usage-shipper")

    def nudge(self) -> None:
        self._wake.set()

    async def ship_once(self) -> int:
        """Ship one batch; return how many rows left the spool (raises on database errors)."""
        rows = await asyncio.to_thread(self.spool.read_unshipped, BATCH)
        if not rows:
            return 0
        records = [r.body for r in rows]
        async with self.db.session() as session:
            repo = UsageRepository(session)
            fresh = await repo.insert_new(records)
            await repo.add_to_rollup(fresh)
        await asyncio.to_thread(self.spool.delete, [r.id for r in rows])
        self.shipped += len(fresh)
        return len(rows)

    async def _run(self) -> None:
        pause = IDLE_PAUSE
        while True:
            try:
                moved = await self.ship_once()
            except (SQLAlchemyError, OSError) as exc:
                self.failures += 1
                pause = min(MAX_BACKOFF, max(1.0, pause * 2))
                log.warning(
                    "usage shipping failed; records stay in the spool", error=type(exc).__name__, retry_in=pause
                )
                await asyncio.sleep(pause)
                continue
            self.failures = 0
            pause = IDLE_PAUSE
            if moved == BATCH:
                continue  # more waiting: keep going
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_PAUSE):
                    await self._wake.wait()

    async def drain(self, seconds: float) -> bool:
        """Ship everything spooled (at shutdown); True if the spool is empty afterwards."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            async with asyncio.timeout(seconds):
                while await self.ship_once():
                    pass
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("usage records left in the spool for the next start", error=type(exc).__name__)
            return False
        return True
