"""Stored model prices: the overrides ``sluice prices`` sets, which win over configured and default prices.

Running gateways load them at start and within their stored-settings refresh (15 s) after a change.
"""

from __future__ import annotations

from collections.abc import Sequence

from sluice.accounting.price_repository import PriceRepository
from sluice.accounting.prices import ModelPrice
from sluice.store.db import Database
from sluice.store.models import ModelPriceRow


class StoredPrices:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> dict[str, ModelPrice]:
        async with self.db.session() as session:
            return await PriceRepository(session).all()

    async def list(self) -> Sequence[ModelPriceRow]:
        async with self.db.session() as session:
            return await PriceRepository(session).list()

    async def set(self, model: str, price: ModelPrice) -> None:
        """Set a model's price (replacing what it had)."""
        async with self.db.session() as session:
            await PriceRepository(session).put(model, price)

    async def clear(self, model: str) -> bool:
        """Remove a model's stored price; False if it had none."""
        async with self.db.session() as session:
            return await PriceRepository(session).remove(model)
