"""SQL for workspaces (tenants)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.store.models import Workspace


class WorkspaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, workspace_id: str) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def names(self, workspace_ids: Sequence[str]) -> dict[str, str]:
        """id → name of those of ``workspace_ids`` that exist."""
        rows = await self.session.execute(select(Workspace.id, Workspace.name).where(Workspace.id.in_(workspace_ids)))
        return {row.id: row.name for row in rows}

    async def exists(self, workspace_id: str) -> bool:
        return await self.get(workspace_id) is not None

    async def add(self, workspace: Workspace) -> Workspace:
        """Insert; the flush raises IntegrityError for a name already taken."""
        self.session.add(workspace)
        await self.session.flush()
        return workspace

    async def flush(self) -> None:
        """Write pending changes now (a renamed workspace's duplicate name surfaces here)."""
        await self.session.flush()

    async def list(self, only: str | None = None) -> Sequence[Workspace]:
        """Oldest first; with ``only``, that one workspace (or none)."""
        query = select(Workspace).order_by(Workspace.created_at)
        if only is not None:
            query = query.where(Workspace.id == only)
        return (await self.session.execute(query)).scalars().all()
