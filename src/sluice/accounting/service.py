"""Accounting: what a call cost, its durable usage record, and budget spend read back from the records.

:class:`Accounting` is the room's one service: the request path uses it for cost and records; the admin API and
the CLI use its :attr:`~Accounting.stored_prices` (price overrides) and :attr:`~Accounting.reports` (usage reports).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from sluice.accounting.inflight import InFlightJournal, orphan_record
from sluice.accounting.outbox import Shipper
from sluice.accounting.prices import ModelPrice, PriceBook
from sluice.accounting.reports import UsageReports
from sluice.accounting.repository import UsageRepository
from sluice.accounting.spool import Spool
from sluice.accounting.stored import StoredPrices
from sluice.accounting.usage import build_record
from sluice.config import Price
from sluice.limits.policy import Scope
from sluice.limits.store import SpendUnavailable
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.store.db import Database

if TYPE_CHECKING:
    from sluice.call import Call

SPOOL_FILE = "usage-spool.db"
DRAIN_SECONDS = 20.0
EXCLUDE_MAX = 1000  # unshipped records named in the spend query (far below any driver's parameter limit)


def _price(price: Price | None) -> ModelPrice | None:
    return ModelPrice(price.input, price.output, price.cached_input) if price is not None else None


class Accounting:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        catalog: ModelCatalog,
        on_ship_failure: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.bill_cache_hits = False  # set from cache.bill_hits
        self.prices = PriceBook()
        # (model, deployment) → price; rebuilt when stored prices change. Bounded by the catalog's size.
        self._price_cache: dict[tuple[str | None, str | None], ModelPrice] = {}
        self.spool = Spool(data_dir / SPOOL_FILE)
        self.shipper = Shipper(self.spool, db, on_ship_failure)
        self.inflight = InFlightJournal(self.spool)
        self.stored_prices = StoredPrices(db)
        self.reports = UsageReports(db)

    async def start(self) -> None:
        self.spool.start()
        await self.inflight.recover()  # calls a crash cut: recorded before shipping starts
        await self.reload_prices()
        self.shipper.start()

    async def close(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        await self.shipper.drain(drain_seconds)
        self.spool.close()

    async def reload_prices(self) -> None:
        stored = await self.stored_prices.all()
        if stored != self.prices.stored:
            self.prices.replace_stored(stored)
            self._price_cache = {}

    # --- cost -----------------------------------------------------------------------------------------------

    def price_of(self, model: str | None, deployment: Deployment | None) -> ModelPrice:
        cache_key = (model, deployment.id if deployment else None)
        found = self._price_cache.get(cache_key)
        if found is None:
            route = self.catalog.get(model) if model else None
            found = self.prices.price(
                model,
                _price(deployment.price) if deployment else None,
                _price(route.price) if route else None,
                deployment.target.model if deployment else None,
            )
            self._price_cache[cache_key] = found
        return found

    def worst_case_price(self, route: ModelRoute) -> ModelPrice:
        return PriceBook.most_expensive([self.price_of(route.name, d) for d in route.deployments])

    def cost_of(self, call: Call) -> int:
        if call.usage is None or (call.cache_hit and not self.bill_cache_hits):
            return 0
        return self.price_of(call.model, call.deployment).cost_nanos(call.usage)

    # --- records --------------------------------------------------------------------------------------------

    async def record(self, call: Call, cost_nanos: int, finished: float) -> None:
        """Write the call's usage record durably (returns once it is in the spool file)."""
        await self.spool.append(build_record(call, cost_nanos, finished))
        self.inflight.end(call.usage_id)

    async def begin(self, call: Call, prompt_tokens: int, output_tokens: int, cost_nanos: int) -> None:
        """Journal the call before its upstream is called: a crash then leaves an estimated record, not none."""
        record = build_record(call, cost_nanos, time.perf_counter())
        await self.inflight.begin(orphan_record(record, prompt_tokens, output_tokens, cost_nanos))

    async def spent(self, scope: Scope, start: datetime, end: datetime) -> int:
        """Money recorded for a scope in [start, end): shipped records plus those still in the spool.

        Raises :class:`SpendUnavailable` when the database (or the spool) cannot be read: the spool alone would
        be a lower bound, and budgets must never be judged on one.

        The shipper may move a record between the reads (each statement sees its own snapshot). A record counted
        from the spool is therefore left out of the database's sum, so it counts once wherever it is by then.
        A scope with more than ``EXCLUDE_MAX`` unshipped records is summed without the exclusion: a record
        shipped between the reads may then count twice, which errs on the safe side for a budget.
        """
        column = {"key": "key_id", "user": "user_id", "workspace": "workspace_id"}[scope.type]
        try:
            pending = await asyncio.to_thread(
                self.spool.pending_cost, column, scope.id, start.timestamp(), end.timestamp()
            )
            async with self.db.session() as session:
                repo = UsageRepository(session)
                shipped = await repo.existing_ids([i for i, _ in pending])
                unshipped = [(i, cost) for i, cost in pending if i not in shipped]
                excluding = [i for i, _ in unshipped] if len(unshipped) <= EXCLUDE_MAX else []
                total = await repo.spent(scope.type, scope.id, start, end, excluding)
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise SpendUnavailable(type(exc).__name__) from exc
        return total + sum(cost for _, cost in unshipped)
