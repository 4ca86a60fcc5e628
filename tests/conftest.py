"""Shared fixtures: real Sluice servers on loopback, one per test module, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.config import LoggingConfig
from sluice.observability.logging import configure_logging
from sluice.store.db import Database
from tests.support.server import SluiceServer, make_settings
from tests.support.services import create_postgres_database, drop_postgres_database


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    configure_logging(LoggingConfig(level="warning", format="json"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for one module's server: SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "sluice.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = create_postgres_database()
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        drop_postgres_database(url)


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.close()


@pytest.fixture(scope="module")
def mock_gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    """Sluice on its embedded defaults (the built-in mock model), key auth on."""
    data_dir: Path = tmp_path_factory.mktemp("sluice")
    settings = make_settings(data_dir, {"database_url": database_url})
    with SluiceServer(settings) as server:
        yield server
