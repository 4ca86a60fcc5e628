"""SECURITY case 32: a database made by an earlier schema revision upgrades to the newest, and its keys still verify.

The key is written with only the columns the old revision had (as that release would have written it); after
`upgrade head`, a real gateway on that database accepts it and refuses a revoked one. Keys owned by users follow
their owners' standing after the upgrade, which needs the memberships to survive it: SQLite alters a table by
copying and dropping it, and with foreign keys enforced, dropping ``users`` cascaded every membership away.
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


def _insert_owned_keys(connection: Connection, member_key: str, outsider_key: str) -> None:
    """A user who is a member of the default workspace and one who is not, each owning a key that says 'owner'."""
    now = datetime.now(UTC)
    stamp = now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now
    for user_id in ("oldmember", "oldoutsider"):
        connection.execute(
            text(
                "INSERT INTO users (id, email, password_hash, status, is_admin, priority, created_at,"
                " password_changed_at) VALUES (:id, :email, 'x', 'active', false, NULL, :now, :now)"
            ),
            {"id": user_id, "email": f"{user_id}@example.com", "now": stamp},
        )
    connection.execute(
        text(
            "INSERT INTO memberships (user_id, workspace_id, role, created_at)"
            " VALUES ('oldmember', 'default', 'member', :now)"
        ),
        {"now": stamp},
    )
    for key_id, user_id, secret in (("ownedm", "oldmember", member_key), ("ownedo", "oldoutsider", outsider_key)):
        connection.execute(
            text(
                "INSERT INTO api_keys (id, name, prefix, key_hash, workspace_id, user_id, allowed_models, priority,"
                " settings, created_by, created_at, expires_at, revoked_at, last_used_at)"
                " VALUES (:id, :id, :prefix, :hash, 'default', :user, NULL, 'standard', '{\"role\": \"owner\"}',"
                " 'cli', :now, NULL, NULL, NULL)"
            ),
            {"id": key_id, "user": user_id, "prefix": visible_prefix(secret), "hash": hash_key(secret), "now": stamp},
        )


def test_owned_keys_from_an_older_schema_follow_their_owners_standing(tmp_path: Path) -> None:
    """SECURITY cases 32 and 37 together: after the upgrade, an old owned key verifies with no more than its owner
    holds now (a member's key that says 'owner' acts as a member; a non-member's key does not verify)."""
    with_users = [r for r in _revisions()[:-1] if r >= "0003"]
    if not with_users:
        pytest.skip("no older revision with users")
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    member_key, outsider_key = generate_key(), generate_key()

    async def make() -> None:
        old = Database(url)
        try:
            async with old.engine.begin() as conn:
                await conn.run_sync(_upgrade_to, with_users[-1])
                await conn.run_sync(_insert_owned_keys, member_key, outsider_key)
            await old.migrate()
        finally:
            await old.close()

    asyncio.run(make())
    with SluiceServer(make_settings(tmp_path / "gw", {"database_url": url})) as server:
        me = httpx.get(f"{server.url}/admin/v1/me", headers={"authorization": f"Bearer {member_key}"}, timeout=10)
        outsider = httpx.get(f"{server.url}/v1/models", headers={"authorization": f"Bearer {outsider_key}"}, timeout=10)
    assert me.status_code == 200 and me.json()["role"] == "member", me.text
    assert outsider.status_code == 401


async def test_sqlite_connections_enforce_foreign_keys_again_after_migrating(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}")
    try:
        await db.migrate()
        for _ in range(3):  # whichever pooled connection comes back
            async with db.engine.connect() as conn:
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await db.close()
