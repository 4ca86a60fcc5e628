"""The shipper: moves usage records from the local spool to the database in batches, off the hot path.

Each batch is inserted with "ignore if the id exists" and folded into the daily roll-up in the same transaction,
counting only the rows that were really new; only then are the rows deleted from the spool. A crash between the
two steps makes the next run insert nothing and delete them: a record is never lost and never counted twice.
While the database is down the records wait in the spool and shipping retries with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from sluice.accounting.repository import UsageRepository
from sluice.accounting.spool import Spool
from sluice.store.db import LOOKUP_ERRORS, Database

log = structlog.get_logger("sluice.outbox")

BATCH = 500
SHIP_INTERVAL = 1.0  # records reach the database within about a second; requests never wait for it
MAX_BACKOFF = 30.0


class Shipper:
    def __init__(self, spool: Spool, db: Database, on_failure: Callable[[], None] | None = None) -> None:
        self.spool = spool
        self.db = db
        self.failures = 0  # consecutive failed attempts
        self._on_failure = on_failure
        self.shipped = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sluice-usage-shipper")

    async def ship_once(self) -> int:
        """Ship one batch; return how many rows left the spool (raises on database errors)."""
        if self.spool.running:
            rows = await self.spool.unshipped(BATCH)
        else:
            rows = await asyncio.to_thread(self.spool.read_unshipped, BATCH)
        if not rows:
            return 0
        records = [r.body for r in rows]
        async with self.db.session() as session:
            repo = UsageRepository(session)
            fresh = await repo.insert_new(records)
            await repo.add_to_rollup(fresh)
        ids = [r.id for r in rows]
        if self.spool.running:
            await self.spool.remove(ids)
        else:
            await asyncio.to_thread(self.spool.delete, ids)
        self.shipped += len(fresh)
        return len(rows)

    async def _run(self) -> None:
        pause = SHIP_INTERVAL
        while True:
            try:
                moved = await self.ship_once()
            except LOOKUP_ERRORS as exc:  # asyncpg's own errors too (a restarting server: CannotConnectNow)
                self.failures += 1
                if self._on_failure is not None:
                    self._on_failure()
                pause = min(MAX_BACKOFF, max(SHIP_INTERVAL, pause * 2))
                log.warning(
                    "usage shipping failed; records stay in the spool", error=type(exc).__name__, retry_in=pause
                )
                await asyncio.sleep(pause)
                continue
            self.failures = 0
            pause = SHIP_INTERVAL
            if moved < BATCH:  # a full batch means more are waiting: keep going
                await asyncio.sleep(SHIP_INTERVAL)

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
        except LOOKUP_ERRORS as exc:
            log.warning("usage records left in the spool for the next start", error=type(exc).__name__)
            return False
        return True
