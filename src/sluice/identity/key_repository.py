"""SQL for API keys (the only place that queries the ``api_keys`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import ApiKey


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def by_id(self, key_id: str, workspace_id: str | None = None) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.id == key_id)
        if workspace_id is not None:
            query = query.where(ApiKey.workspace_id == workspace_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_id_or_prefix(self, ident: str) -> ApiKey | None:
        found = await self.by_id(ident)
        if found is not None:
            return found
        rows = (await self.session.execute(select(ApiKey).where(ApiKey.prefix == ident))).scalars().all()
        return rows[0] if len(rows) == 1 else None

    async def list(self, workspace_id: str | None = None, include_revoked: bool = False) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if workspace_id is not None:
            query = query.where(ApiKey.workspace_id == workspace_id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return (await self.session.execute(query)).scalars().all()

    async def touch(self, last_used: dict[str, datetime]) -> None:
        """Record last-use times collected off the hot path (one statement per key, one transaction)."""
        for key_id, when in last_used.items():
            await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
