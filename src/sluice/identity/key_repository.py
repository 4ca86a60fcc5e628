"""SQL for API keys (the only place that queries the ``api_keys`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.identity.standing import KeyStanding
from sluice.store.models import ApiKey, Membership, User, Workspace


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def names(self, key_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """id → (name, visible prefix) of those of ``key_ids`` that exist (revoked ones too)."""
        rows = await self.session.execute(select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(ApiKey.id.in_(key_ids)))
        return {row.id: (row.name, row.prefix) for row in rows}

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def standing(self, *, key_hash: str | None = None, key_id: str | None = None) -> KeyStanding | None:
        """An unrevoked key with its workspace, owner and the owner's membership there, in one query.

        Revoked and unknown keys run the very same statement and both find no row, so neither the query count nor
        the work after it tells them apart (no timing oracle).
        """
        condition: ColumnElement[bool] = ApiKey.key_hash == key_hash if key_hash is not None else ApiKey.id == key_id
        query = (
            select(ApiKey, Workspace, User, Membership)
            .join(Workspace, Workspace.id == ApiKey.workspace_id, isouter=True)
            .join(User, User.id == ApiKey.user_id, isouter=True)
            .join(
                Membership,
                and_(Membership.user_id == ApiKey.user_id, Membership.workspace_id == ApiKey.workspace_id),
                isouter=True,
            )
            .where(condition, ApiKey.revoked_at.is_(None))
        )
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            return None
        return KeyStanding(key=row[0], workspace=row[1], owner=row[2], membership=row[3])

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

    async def list(
        self,
        workspace_id: str | None = None,
        include_revoked: bool = False,
        *,
        user_id: str | None = None,
        created_by: str | None = None,
        limit: int | None = None,
    ) -> Sequence[ApiKey]:
        """Oldest first, narrowed by whichever of workspace, owner and creator are given."""
        query = select(ApiKey).order_by(ApiKey.created_at)
        for column, value in (
            (ApiKey.workspace_id, workspace_id),
            (ApiKey.user_id, user_id),
            (ApiKey.created_by, created_by),
        ):
            if value is not None:
                query = query.where(column == value)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        if limit is not None:
            query = query.limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def touch(self, last_used: dict[str, datetime]) -> None:
        """Record last-use times collected off the hot path (one statement per key, one transaction)."""
        for key_id, when in last_used.items():
            await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
