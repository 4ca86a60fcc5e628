"""SECURITY case 32: a database made by an earlier schema revision upgrades to the newest, and its keys still verify.

The key is written with only the columns the old revision had (as that release would have written it); after
`upgrade head`, a real gateway on that database accepts it and refuses a revoked one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from sluice.identity.keys import generate_key, hash_key, visible_prefix
from sluice.store.db import Database, alembic_config
from tests.support.server import SluiceServer, make_settings
from tests.support.services import create_postgres_database, drop_postgres_database


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _older_revisions() -> list[str]:
    revisions = _revisions()
    return sorted({revisions[0], revisions[-2]}) if len(revisions) > 1 else []


def _upgrade_to(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _insert_key(connection: Connection, key_id: str, secret: str, revoked: bool) -> None:
    now = datetime.now(UTC)
    connection.execute(
        text(
            "INSERT INTO api_keys (id, name, prefix, key_hash, workspace_id, user_id, allowed_models, priority,"
            " settings, created_by, created_at, expires_at, revoked_at, last_used_at)"
            " VALUES (:id, :name, :prefix, :hash, 'default', NULL, NULL, 'standard', '{}', 'cli', :now, NULL,"
            " :revoked, NULL)"
        ),
        {
            "id": key_id,
            "name": f"old {key_id}",
            "prefix": visible_prefix(secret),
            "hash": hash_key(secret),
            "now": now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now,
            "revoked": (now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now) if revoked else None,
        },
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if request.param == "postgresql":
        request.applymarker(pytest.mark.services)
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


async def _make_old_database_and_upgrade(url: str, revision: str, live: str, revoked: str) -> None:
    old = Database(url)
    try:
        async with old.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, revision)
            await conn.run_sync(_insert_key, "oldlive", live, False)
            await conn.run_sync(_insert_key, "oldrevoked", revoked, True)
        assert await old.current_revision() == revision
        await old.migrate()
        assert await old.is_current()
    finally:
        await old.close()


@pytest.mark.parametrize("revision", _older_revisions())
def test_keys_made_on_an_older_schema_verify_after_the_upgrade(
    database_url: str, revision: str, tmp_path: Path
) -> None:
    live, revoked = generate_key(), generate_key()
    asyncio.run(_make_old_database_and_upgrade(database_url, revision, live, revoked))
    settings = make_settings(tmp_path / "gw", {"database_url": database_url})
    with SluiceServer(settings) as server:
        ok = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {live}"}, timeout=10)
        refused = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {revoked}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["data"]
    assert refused.status_code == 401
