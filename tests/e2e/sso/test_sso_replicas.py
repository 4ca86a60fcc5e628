"""Two replicas behind one public URL: a sign-in started on one finishes on the other (the state is in the shared
database), and access a sign-in takes away on one stops at once on the other (Redis invalidation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.e2e.sso.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PROVIDER, sso_config
from tests.e2e.sso.idp import TestIdP
from tests.support.server import SluiceServer, make_settings
from tests.support.services import REDIS_URL, create_postgres_database, drop_postgres_database, require_redis

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


def until(predicate: Any, what: str, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sign_in_crosses_replicas_and_so_does_losing_access(tmp_path: Path, postgres_url: str) -> None:
    require_redis()
    (tmp_path / "idp").mkdir()
    idp = TestIdP(tmp_path / "idp", [], [])
    public = "https://llm.example.test"  # the load balancer's address: both replicas build one callback URL from it
    replicas = []
    for name in ("a", "b"):
        config = {
            "database_url": postgres_url,
            "redis_url": REDIS_URL,
            "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD, "user_cache_ttl_seconds": 300},
            "key_cache": {"ttl_seconds": 300},
            "sso": {**sso_config(idp.issuer), "public_url": public},
        }
        replicas.append(SluiceServer(make_settings(tmp_path / name, config)))
    a, b = replicas
    idp.redirect_uris = [f"{public}/admin/v1/auth/sso/{PROVIDER}/callback"]
    idp.start()
    try:
        a.start()
        b.start()
        idp.set_account("quinn", ["llm-users"])
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            start = f"{a.url}/admin/v1/auth/sso/{PROVIDER}/start"
            callback = httpx.URL(idp.walk(browser, start, "quinn", stop_at=f"{public}/admin/v1/auth/sso/"))
            finished = browser.get(f"{b.url}{callback.path}", params=dict(callback.params))  # routed to B
        assert finished.status_code == 200, finished.text
        session = finished.json()["access_token"]

        def works_on_b() -> bool:
            headers = {"authorization": f"Bearer {session}"}
            return httpx.get(f"{b.url}/v1/models", headers=headers, timeout=10).status_code == 200

        assert works_on_b()  # now cached on B for 300 s
        idp.set_account("quinn", ["unrelated"])
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            start = f"{a.url}/admin/v1/auth/sso/{PROVIDER}/start"
            callback = httpx.URL(idp.walk(browser, start, "quinn", stop_at=f"{public}/admin/v1/auth/sso/"))
            refused = browser.get(f"{a.url}{callback.path}", params=dict(callback.params))
        assert refused.status_code == 403  # on A, which took the membership away and announced it
        until(lambda: not works_on_b(), "B to drop the session")
    finally:
        b.stop()
        a.stop()
        idp.stop()
