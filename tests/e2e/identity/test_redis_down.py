"""SECURITY.md cases 16 and 39 for identity: with Redis unreachable, identity keeps its documented behaviour.

Keys and logins keep working; the login and sign-up throttles fall back to this replica's own counts (still
throttling, never failing open or answering 500); a revocation still applies on this replica at once; and when
Redis returns, invalidation reaches the replicas again. Redis here is a private server the test stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, identity_settings
from tests.support.processes import PrivateRedis
from tests.support.server import SluiceServer

pytestmark = pytest.mark.services


def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("not within the deadline")


def test_identity_with_redis_down_falls_back_without_failing_open(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    try:
        settings = identity_settings(
            tmp_path,
            redis_url=redis.url,
            key_cache={"ttl_seconds": 300},
            auth={"signup_attempts": 2, "registration": "approval"},
        )
        with SluiceServer(settings) as server:
            api = Api(server.url)
            admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
            key = api.post("/keys", admin, json={"name": "k"}).json()
            headers = {"authorization": f"Bearer {key['key']}"}
            models = f"{server.url}/v1/models"
            assert httpx.get(models, headers=headers).status_code == 200

            redis.stop()
            assert httpx.get(models, headers=headers).status_code == 200  # cached and known keys keep working
            assert api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]  # a good login still signs in
            wrong = [
                api.post("/auth/login", json={"email": ADMIN_EMAIL, "password": f"wrong-{i}"}).status_code
                for i in range(6)
            ]
            assert wrong[:5] == [401] * 5 and wrong[5] == 429  # counted on this replica: not failing open
            signups = [
                api.post("/auth/register", json={"email": f"s{i}@example.com", "password": "s-Password-123"})
                for i in range(3)
            ]
            assert [r.status_code for r in signups] == [201, 201, 429]
            assert api.call("DELETE", f"/keys/{key['id']}", admin).status_code == 200
            assert httpx.get(models, headers=headers).status_code == 401  # applied here at once

            redis.start()  # the same port: invalidation listens again and nothing was left half done
            second = api.post("/keys", admin, json={"name": "k2"}).json()
            second_headers = {"authorization": f"Bearer {second['key']}"}
            assert httpx.get(models, headers=second_headers).status_code == 200
            assert api.call("DELETE", f"/keys/{second['id']}", admin).status_code == 200
            until(lambda: httpx.get(models, headers=second_headers).status_code == 401)
            api.close()
    finally:
        redis.stop()
