"""Issue 23 items 1 and 2: a refused or hung PostgreSQL never stalls a request or breaks a key that worked.

A private PostgreSQL cluster runs under the gateway and is stopped (refused) or paused with SIGSTOP (hung: the
kernel still accepts connections, nothing answers). Credential caches live a fraction of a second here, so every
request after the first has to go back to the database, as it would 30 s into a real outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.support.processes import PrivatePostgres
from tests.support.server import SluiceServer

pytestmark = pytest.mark.services

CACHE_SECONDS = 0.2
# A request's lookup deadline is 2 s (database.request_deadline_seconds); an answer later than this is a hang.
ANSWER_WITHIN = 8.0


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres().init()
    try:
        asyncio.run(_migrate(pg.url))
        yield pg
    finally:
        pg.destroy()


def _settings(tmp_path: Path, pg: PrivatePostgres) -> Any:
    return identity_settings(
        tmp_path,
        database_url=pg.url,
        key_cache={"ttl_seconds": CACHE_SECONDS, "negative_ttl_seconds": CACHE_SECONDS},
        auth={"user_cache_ttl_seconds": CACHE_SECONDS},
    )


def _models(server: SluiceServer, credential: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {credential}"}
    return httpx.get(f"{server.url}/v1/models", headers=headers, timeout=ANSWER_WITHIN)


def _chat(server: SluiceServer, credential: str) -> httpx.Response:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {credential}"}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=ANSWER_WITHIN)


def _past_cache_lifetime() -> None:
    time.sleep(CACHE_SECONDS * 2)  # the passing of time is what is tested: cached entries must be stale now


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "auth_unavailable"
    assert int(response.headers["retry-after"]) > 0


def _wait_until_ok(server: SluiceServer, credential: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _models(server, credential).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the credential did not work again after the database came back")


def _credentials(server: SluiceServer) -> tuple[Api, str, str, str, str]:
    """An admin API client, a known key and session (used once, so cached), an unknown key and session."""
    api = Api(server.url)
    session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    known = api.post("/keys", session, json={"name": "known"}).json()["key"]
    unknown = api.post("/keys", session, json={"name": "unknown"}).json()["key"]
    other_session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert _models(server, known).status_code == 200
    assert _models(server, session).status_code == 200
    return api, known, session, unknown, other_session


def test_known_credentials_work_and_new_ones_get_503_while_the_database_is_hung(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    with SluiceServer(_settings(tmp_path, postgres)) as server:
        api, known, session, unknown, other_session = _credentials(server)
        postgres.pause()
        try:
            _past_cache_lifetime()
            for _ in range(3):  # every time, not only the first: the lookup that hangs is not the request's
                assert _models(server, known).status_code == 200
                assert _chat(server, known).status_code == 200
                assert _models(server, session).status_code == 200
            _assert_unavailable(_models(server, unknown))
            _assert_unavailable(_models(server, other_session))
            _assert_unavailable(_chat(server, "sk-sl-" + "q" * 43))
        finally:
            postgres.resume()
        _wait_until_ok(server, unknown)
        _wait_until_ok(server, other_session)
        api.close()


def test_known_credentials_outlive_their_cache_while_the_database_refuses(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    with SluiceServer(_settings(tmp_path, postgres)) as server:
        api, known, session, unknown, other_session = _credentials(server)
        postgres.stop()
        for _ in range(3):
            _past_cache_lifetime()
            assert _models(server, known).status_code == 200
            assert _chat(server, known).status_code == 200
            assert _models(server, session).status_code == 200
            _assert_unavailable(_models(server, unknown))
            _assert_unavailable(_models(server, other_session))
        postgres.start()
        _wait_until_ok(server, unknown)
        _wait_until_ok(server, other_session)
        api.close()
