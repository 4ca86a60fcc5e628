"""Carrying what the shared limit store missed during an outage over to it once it is back.

Two things go missing while Redis is down: settlements of calls Redis had admitted (their reservations would
otherwise just expire, and their cost would never reach ``spent``), and — with ``local_fallback`` — the cost of
every call the per-replica fallback store admitted. Both are kept as :class:`Settlement` rows in the local spool
file (so a restart does not forget them) and replayed through the store's idempotent settle script when Redis
answers again: before the next admission on this replica, and from a background loop every second, so a replica
with no traffic still hands its share over. Once Redis is back the fallback store is told to re-read each budget's
spend from the usage records at the next outage, since they now hold what every replica spent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog

from sluice.accounting.spool import Spool
from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import Limits, Scope
from sluice.limits.store import LimitStore, Reservation, Settlement, StoreUnavailable

log = structlog.get_logger("sluice.limits")

BATCH = 500
RETRY_SECONDS = 1.0
CLOSE_SECONDS = 5.0

TABLE = "deferred_settlements"


class DeferredSettlements:
    """Settlements waiting for the shared store, kept in the spool file through the spool's queue interface (so
    they are as durable as the usage records, and written on the spool's thread like them)."""

    def __init__(self, spool: Spool) -> None:
        self.rows = spool.queue(TABLE)
        self.count = 0  # rows waiting; read on the admission path, so kept in memory

    async def open(self) -> None:
        self.count = await self.rows.open()

    async def add(self, settlement: Settlement) -> None:
        body = orjson.dumps(_encode(settlement))
        self.count += await self.rows.add(settlement.reservation.id, settlement.now, body)

    async def oldest(self, limit: int) -> list[Settlement]:
        rows = await self.rows.oldest(limit)
        if not rows:
            self.count = 0
        found, unreadable = [], []
        for row_id, body in rows:
            try:
                found.append(_decode(orjson.loads(body)))
            except (ValueError, KeyError, TypeError):
                # Never let one damaged row block every later replay (and, through it, admission).
                log.error("unreadable deferred limit settlement dropped", usage_id=row_id)
                unreadable.append(row_id)
        if unreadable:
            await self.remove(unreadable)
        return found

    async def remove(self, ids: list[str]) -> None:
        self.count = await self.rows.remove(ids)


class Reconciler:
    def __init__(self, store: LimitStore, deferred: DeferredSettlements, fallback: MemoryLimitStore | None) -> None:
        self.store = store
        self.deferred = deferred
        self.fallback = fallback
        self.degraded = False  # the store failed since it last answered
        self._lock = asyncio.Lock()  # one replay at a time; admissions arriving meanwhile wait for it
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self.deferred.count

    async def start(self) -> None:
        await self.deferred.open()
        if self.deferred.count:
            log.warning("limit settlements left from before the restart will be replayed", count=self.deferred.count)
        self._task = asyncio.create_task(self._run(), name="sluice-limit-reconciler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.pending:
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self.replay()
        if self.pending:
            log.warning("limit settlements kept in the spool for the next start", count=self.pending)

    async def defer(self, settlement: Settlement) -> None:
        """Keep a settlement the store could not take, for :meth:`replay`."""
        self.degraded = True
        try:
            await self.deferred.add(settlement)
        except OSError as exc:
            # The spool file is failing (the usage record just failed alike); the cost stays in nothing.
            log.error("deferred limit settlement lost", usage_id=settlement.reservation.id, error=str(exc))

    async def replay(self) -> None:
        """Hand every deferred settlement to the store; raises :class:`StoreUnavailable` while it is down."""
        async with self._lock:
            replayed = 0
            try:
                while self.deferred.count:
                    batch = await self.deferred.oldest(BATCH)
                    if not batch:
                        continue  # none left (count now 0), or only unreadable rows, removed (count re-read)
                    await self.store.settle_many(batch)
                    await self.deferred.remove([s.reservation.id for s in batch])
                    replayed += len(batch)
            except OSError as exc:
                log.error("deferred limit settlements could not be read from the spool", error=str(exc))
                return
            finally:
                if replayed:
                    log.info("deferred limit settlements replayed", count=replayed, left=self.deferred.count)
        self.came_back()

    def came_back(self) -> None:
        """The store answered again: the fallback's view of spend is stale from now on."""
        if self.degraded:
            self.degraded = False
            if self.fallback is not None:
                self.fallback.refresh_spend()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            if self.pending:
                with contextlib.suppress(StoreUnavailable):
                    await self.replay()


def _encode(s: Settlement) -> dict[str, Any]:
    r = s.reservation
    return {
        "id": r.id,
        "scopes": [[sc.type, sc.id, *_limit_values(sc.limits)] for sc in r.scopes],
        "reserved_tokens": r.tokens,
        "reserved_cost": r.cost_nanos,
        "at": r.at,
        "lease": r.lease,
        "period_keys": r.period_keys,
        "fallback": r.fallback,
        "tokens": s.tokens,
        "cost": s.cost_nanos,
        "now": s.now,
    }


def _limit_values(limits: Limits) -> list[Any]:
    return [limits.rpm, limits.tpm, limits.concurrent, limits.budget_nanos, limits.period]


def _decode(body: dict[str, Any]) -> Settlement:
    scopes = [Scope(kind, ident, Limits(*values)) for kind, ident, *values in body["scopes"]]
    reservation = Reservation(
        body["id"],
        scopes,
        body["reserved_tokens"],
        body["reserved_cost"],
        body["at"],
        body["lease"],
        dict(body["period_keys"]),
        fallback=body["fallback"],
    )
    return Settlement(reservation, body["tokens"], body["cost"], body["now"])
