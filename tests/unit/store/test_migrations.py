"""Every schema change is a migration: after `upgrade head`, the models and the database agree exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, select

from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, Base, Workspace
from tests.support.services import fresh_postgres_database


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _check(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        assert await db.is_current()
        async with db.session() as session:
            default = (await session.execute(select(Workspace))).scalars().all()
        assert [w.id for w in default] == [DEFAULT_WORKSPACE_ID]
        await db.migrate()  # idempotent
    finally:
        await db.close()


async def test_models_match_migrations_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.services
async def test_models_match_migrations_on_postgresql() -> None:
    async with fresh_postgres_database() as url:
        await _check(url)
