"""SQL for stored model prices (the only module that touches ``model_prices``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.accounting.prices import ModelPrice
from sluice.store.models import ModelPriceRow


class PriceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> dict[str, ModelPrice]:
        return {r.model: ModelPrice(r.input, r.output, r.cached_input) for r in await self.list()}

    async def list(self) -> Sequence[ModelPriceRow]:
        return (await self.session.execute(select(ModelPriceRow).order_by(ModelPriceRow.model))).scalars().all()

    async def put(self, model: str, price: ModelPrice) -> None:
        row = await self.session.get(ModelPriceRow, model)
        if row is None:
            row = ModelPriceRow(model=model, input=price.input, output=price.output)
            self.session.add(row)
        row.input, row.output, row.cached_input = price.input, price.output, price.cached_input

    async def remove(self, model: str) -> bool:
        result = await self.session.execute(delete(ModelPriceRow).where(ModelPriceRow.model == model))
        return bool(result.rowcount)  # type: ignore[attr-defined]
