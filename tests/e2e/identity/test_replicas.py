"""Identity on shared infrastructure: PostgreSQL for the flows, Redis pub/sub for invalidation across replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.e2e.identity.test_flows import test_register_approve_login_key_call_refresh_logout as full_flow
from tests.support.server import SluiceServer
from tests.support.services import create_postgres_database, drop_postgres_database, require_redis

pytestmark = pytest.mark.services


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()

    async def migrate() -> None:
        db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        await db.migrate()
        await db.close()

    asyncio.run(migrate())
    yield url
    drop_postgres_database(url)


def test_full_flow_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    with SluiceServer(identity_settings(tmp_path, database_url=postgres_url)) as server:
        api = Api(server.url)
        full_flow(server, api)
        api.close()


def _until(predicate: object, seconds: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("the change did not reach the other replica in time")


def test_revocation_and_disabling_reach_every_replica_at_once(tmp_path: Path, postgres_url: str) -> None:
    require_redis()
    common = {
        "database_url": postgres_url,
        "redis_url": "redis://127.0.0.1:6379/0",
        "key_cache": {"ttl_seconds": 300},
        "auth": {"user_cache_ttl_seconds": 300},
    }
    with (
        SluiceServer(identity_settings(tmp_path / "a", **common)) as a,
        SluiceServer(identity_settings(tmp_path / "b", **common)) as b,
    ):
        api_a = Api(a.url)
        admin = api_a.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        key = api_a.post("/keys", admin, json={"name": "shared"}).json()

        def works_on_b(token: str) -> bool:
            headers = {"authorization": f"Bearer {token}"}
            return httpx.get(f"{b.url}/v1/models", headers=headers, timeout=10).status_code == 200

        assert works_on_b(key["key"])  # now cached on B for 300 s
        assert api_a.call("DELETE", f"/keys/{key['id']}", admin).status_code == 200
        _until(lambda: not works_on_b(key["key"]))

        workspace = api_a.post("/workspaces", admin, json={"name": "w"}).json()["id"]
        key2 = api_a.post("/keys", admin, json={"name": "w key", "workspace_id": workspace}).json()
        assert works_on_b(key2["key"])
        assert api_a.call("PATCH", f"/workspaces/{workspace}", admin, json={"disabled": True}).status_code == 200
        _until(lambda: not works_on_b(key2["key"]))

        user = api_a.post("/auth/register", json={"email": "u@example.com", "password": "u-password-1"}).json()
        api_a.post(f"/users/{user['user']['id']}/approve", admin)
        session = api_a.login("u@example.com", "u-password-1")["access_token"]
        assert works_on_b(session)
        assert api_a.post(f"/users/{user['user']['id']}/disable", admin).status_code == 200
        _until(lambda: not works_on_b(session))
        api_a.close()


def test_trusted_proxies_changed_on_one_replica_apply_on_the_other_at_once(tmp_path: Path, postgres_url: str) -> None:
    """The run-time setting travels like IP rules: stored, then announced on Redis (backstop: the 15 s refresh)."""
    require_redis()
    common = {"database_url": postgres_url, "redis_url": "redis://127.0.0.1:6379/0"}
    with (
        SluiceServer(identity_settings(tmp_path / "a", **common)) as a,
        SluiceServer(identity_settings(tmp_path / "b", **common)) as b,
    ):
        api_a = Api(a.url)
        admin = api_a.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        key = api_a.post("/keys", admin, json={"name": "office", "ip_allow": ["10.0.0.0/8"]}).json()["key"]

        def works_on_b() -> bool:
            headers = {"authorization": f"Bearer {key}", "x-forwarded-for": "10.1.2.3"}
            return httpx.get(f"{b.url}/v1/models", headers=headers, timeout=10).status_code == 200

        assert not works_on_b()
        changed = api_a.call("PUT", "/settings", admin, json={"trusted_proxies": ["127.0.0.1/32"]})
        assert changed.status_code == 200
        _until(works_on_b)
        api_a.call("PUT", "/settings", admin, json={"trusted_proxies": None})
        _until(lambda: not works_on_b())
        api_a.close()
