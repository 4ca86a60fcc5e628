"""Every schema change is a migration: after `upgrade head`, the models and the database agree exactly."""

from __future__ import annotations

import asyncio
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


@pytest.mark.services
async def test_concurrent_migrations_of_one_postgresql_database_both_succeed() -> None:
    """Replicas starting together (an init container per pod) may all run `sluice migrate`: one upgrades, the
    others wait on the advisory lock and find the schema current, instead of failing on tables that now exist."""
    async with fresh_postgres_database() as url:
        dbs = [Database(url) for _ in range(3)]
        try:
            await asyncio.gather(*(db.migrate() for db in dbs))
            assert all([await db.is_current() for db in dbs])
            async with dbs[0].session() as session:
                default = (await session.execute(select(Workspace))).scalars().all()
            assert [w.id for w in default] == [DEFAULT_WORKSPACE_ID]
        finally:
            for db in dbs:
                await db.close()
