"""SQL for stored responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from sluice.store.db import Database
from sluice.store.models import StoredResponse


class ResponseRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, row: StoredResponse) -> None:
        async with self.db.session() as session:
            await session.merge(row)  # a pass-through id seen again (a cached replay) replaces the older copy

    async def get(self, response_id: str, workspace_id: str | None, owner: str, now: datetime) -> StoredResponse | None:
        query = select(StoredResponse).where(
            StoredResponse.id == response_id,
            StoredResponse.owner == owner,
            StoredResponse.expires_at > now,
            StoredResponse.workspace_id.is_(None)
            if workspace_id is None
            else StoredResponse.workspace_id == workspace_id,
        )
        async with self.db.session() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def delete(self, response_id: str, workspace_id: str | None, owner: str) -> bool:
        statement = delete(StoredResponse).where(
            StoredResponse.id == response_id,
            StoredResponse.owner == owner,
            StoredResponse.workspace_id.is_(None)
            if workspace_id is None
            else StoredResponse.workspace_id == workspace_id,
        )
        async with self.db.session() as session:
            result: Any = await session.execute(statement)
            return bool(result.rowcount)

    async def purge_expired(self, now: datetime) -> int:
        async with self.db.session() as session:
            result: Any = await session.execute(delete(StoredResponse).where(StoredResponse.expires_at <= now))
            return int(result.rowcount or 0)
