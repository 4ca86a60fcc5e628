"""Issue 16 item 9, SECURITY.md cases 31 and 39: with the database down, unknown keys, unknown sessions and logins
get the documented 503, never 500; keys already cached keep working.

A private PostgreSQL cluster is started for the test and stopped under the running gateway.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.support.processes import PrivatePostgres
from tests.support.server import SluiceServer

pytestmark = pytest.mark.services


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


def test_unknown_keys_sessions_and_logins_get_503_while_the_database_is_down(tmp_path: Path) -> None:
    pg = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(pg.url))
        with SluiceServer(identity_settings(tmp_path, database_url=pg.url)) as server:
            api = Api(server.url)
            session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            known = api.post("/keys", session["access_token"], json={"name": "known"}).json()["key"]
            unknown = api.post("/keys", session["access_token"], json={"name": "unknown"}).json()["key"]
            other_session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
            models = f"{server.url}/v1/models"
            assert httpx.get(models, headers={"authorization": f"Bearer {known}"}).status_code == 200  # cached now

            pg.stop()
            for credential in (unknown, "sk-sl-" + "z" * 43, other_session):
                refused = httpx.get(models, headers={"authorization": f"Bearer {credential}"}, timeout=30)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "auth_unavailable"
            login = api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert login.status_code == 503, login.text
            assert login.json()["error"]["code"] == "database_unavailable"
            assert "retry-after" in login.headers
            wrong = api.post("/auth/login", json={"email": "nobody@example.com", "password": "wrong-password-1"})
            assert wrong.status_code == 503, wrong.text
            assert httpx.get(models, headers={"authorization": f"Bearer {known}"}).status_code == 200

            pg.start()
            assert api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 200
            api.close()
    finally:
        pg.destroy()
