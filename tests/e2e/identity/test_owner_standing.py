"""SECURITY.md case 37 (issue 16 items 1 and 3): a key holds no more than its owner holds *now*, on every replica.

Two replicas share PostgreSQL and Redis and cache keys for 300 s; the owner is demoted, the workspace narrows its
models, the owner is removed, on replica A, and the key on replica B loses the difference within the pub/sub
delivery time (polled with a deadline), as a revocation does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings, make_user
from tests.support.server import SluiceServer
from tests.support.services import create_postgres_database, drop_postgres_database, require_redis

pytestmark = pytest.mark.services

DEADLINE = 3.0  # seconds; the cache lifetime is 300 s, so only the announcement can make it


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


def until(predicate: Callable[[], bool], seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("the change did not reach the other replica in time")


def test_demoted_restricted_and_removed_owners_keys_follow_on_every_replica(tmp_path: Path, postgres_url: str) -> None:
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
        api_a, api_b = Api(a.url), Api(b.url)
        admin = api_a.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        ws = api_a.post("/workspaces", admin, json={"name": "standing"}).json()["id"]
        owner = make_user(api_a, admin, "owner@example.com", ws, "owner")
        owner_id = api_a.get("/me", owner).json()["user_id"]
        key = api_a.post("/keys", owner, json={"name": "owner's key"}).json()
        assert key["role"] == "owner"
        secret = key["key"]

        def models_on_b() -> set[str] | None:
            response = httpx.get(f"{b.url}/v1/models", headers={"authorization": f"Bearer {secret}"}, timeout=10)
            return {m["id"] for m in response.json()["data"]} if response.status_code == 200 else None

        # Owner powers on B, now cached there for 300 s.
        assert api_b.get("/users", secret).status_code == 200
        assert api_b.post("/invites", secret, json={"role": "owner"}).status_code == 201
        assert models_on_b() == {"mock-1"}

        # 1: demoted on A → the key on B lists no users and invites no owners.
        demote = api_a.call("PUT", f"/workspaces/{ws}/members/{owner_id}", admin, json={"role": "member"})
        assert demote.status_code == 200, demote.text
        until(lambda: api_b.get("/users", secret).status_code == 403)
        assert api_b.post("/invites", secret, json={"role": "owner"}).status_code == 403
        assert api_b.get("/me", secret).json()["role"] == "member"

        # 3: the workspace narrows its models on A → the key on B sees only those.
        narrowed = api_a.call("PATCH", f"/workspaces/{ws}", admin, json={"allowed_models": ["another-model"]})
        assert narrowed.status_code == 200, narrowed.text
        until(lambda: models_on_b() == set())

        # 1: removed from the workspace on A → the key stops on B.
        assert api_a.call("DELETE", f"/workspaces/{ws}/members/{owner_id}", admin).status_code in (200, 204)
        until(lambda: httpx.get(f"{b.url}/v1/models", headers={"authorization": f"Bearer {secret}"}).status_code == 401)
        api_a.close()
        api_b.close()
