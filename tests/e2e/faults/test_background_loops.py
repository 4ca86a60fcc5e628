"""Issue 23 item 3: a database outage never ends a replica's background loops.

Two replicas share a private PostgreSQL without Redis, so replica A learns of replica B's changes only through its
periodic refresh. The database is stopped long enough for A's refresh to fail, started again, and B lowers a key's
rpm: A must enforce it, count the failed runs, and show the loop in ``/health/ready``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.support.processes import PrivatePostgres
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

pytestmark = pytest.mark.services

REFRESH_SECONDS = 0.3
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


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


def _replica(tmp_path: Path, name: str, pg: PrivatePostgres) -> SluiceServer:
    config = {"database_url": pg.url, "database": {"refresh_seconds": REFRESH_SECONDS}}
    return SluiceServer(make_settings(tmp_path / name, config))


def _eventually(what: str, check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def _loop(server: SluiceServer, name: str) -> dict[str, Any]:
    checks = httpx.get(f"{server.url}/health/ready", timeout=10).json()["checks"]
    loop: dict[str, Any] = checks["loops"][name]
    return loop


def _chat(server: SluiceServer, key: str) -> int:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=10).status_code


def test_a_limit_changed_after_an_outage_is_in_force_on_every_replica(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    with _replica(tmp_path, "a", postgres) as a, _replica(tmp_path, "b", postgres) as b:
        admin_b = httpx.Client(base_url=f"{b.url}/admin/v1", headers=MASTER, timeout=10)
        created = admin_b.post("/keys", json={"name": "loops", "workspace_id": "default"}).json()
        assert "key" in created, created
        key = created["key"]
        assert _chat(a, key) == 200

        postgres.stop()
        _eventually("A's refresh fails", lambda: _loop(a, "refresh-stored")["status"] == "failing")
        failed_runs = _loop(a, "refresh-stored")["consecutive_failures"]
        _eventually("A's refresh keeps trying", lambda: _loop(a, "refresh-stored").get("failures", 0) > failed_runs)
        postgres.start()

        assert admin_b.put(f"/limits/key/{created['id']}", json={"rpm": 2}).status_code == 200
        _eventually("A enforces the rpm B set", lambda: _chat(a, key) == 429)
        assert _loop(a, "refresh-stored")["status"] == "ok"
        metrics = httpx.get(f"{a.url}/metrics", timeout=10).text
        failures = [
            line
            for line in metrics.splitlines()
            if line.startswith('sluice_background_loop_failures_total{loop="refresh-stored"}')
        ]
        assert failures and float(failures[0].split()[-1]) >= 2
        admin_b.close()
