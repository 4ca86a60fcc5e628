"""SQL for stored limit policies (the only module that touches ``limit_policies``).

Whose scope a policy is, and which role default applies to it, is identity's to say
(:class:`sluice.identity.subjects.Subjects`): this room does not read identity's tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.limits.policy import Limits
from sluice.store.models import LimitPolicy


class LimitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> dict[tuple[str, str], Limits]:
        rows = (await self.session.execute(select(LimitPolicy))).scalars().all()
        return {(r.scope_type, r.scope_id): _limits(r) for r in rows}

    async def list(self, scope_type: str | None = None) -> Sequence[LimitPolicy]:
        query = select(LimitPolicy).order_by(LimitPolicy.scope_type, LimitPolicy.scope_id)
        if scope_type is not None:
            query = query.where(LimitPolicy.scope_type == scope_type)
        return (await self.session.execute(query)).scalars().all()

    async def get(self, scope_type: str, scope_id: str) -> LimitPolicy | None:
        query = select(LimitPolicy).where(LimitPolicy.scope_type == scope_type, LimitPolicy.scope_id == scope_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def put(self, scope_type: str, scope_id: str, limits: Limits) -> LimitPolicy:
        row = await self.get(scope_type, scope_id)
        if row is None:
            row = LimitPolicy(scope_type=scope_type, scope_id=scope_id)
            self.session.add(row)
        row.rpm, row.tpm, row.concurrent = limits.rpm, limits.tpm, limits.concurrent
        row.budget_nanos, row.period = limits.budget_nanos, limits.period
        await self.session.flush()
        return row

    async def remove(self, scope_type: str, scope_id: str) -> bool:
        result = await self.session.execute(
            delete(LimitPolicy).where(LimitPolicy.scope_type == scope_type, LimitPolicy.scope_id == scope_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _limits(row: LimitPolicy) -> Limits:
    return Limits(row.rpm, row.tpm, row.concurrent, row.budget_nanos, row.period)  # type: ignore[arg-type]
