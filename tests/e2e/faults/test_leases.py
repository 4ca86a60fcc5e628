"""Issue 23 item 5: a running call keeps its reservation however long it runs; a killed replica's are freed within
seconds (``limits.lease_seconds``), not after the provider's timeout plus a minute.

Two `sluice serve` replicas share a PostgreSQL database and a private Redis; a key may run one call at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.store.db import Database
from tests.support.processes import PrivateRedis, SluiceProcess
from tests.support.server import MASTER_KEY
from tests.support.services import create_postgres_database, drop_postgres_database

pytestmark = pytest.mark.services

LEASE = 4.0  # renewed every third of it: a replica starved of CPU for a second or two under CI load keeps it
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


@pytest.fixture
def database() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _replica(tmp_path: Path, name: str, database: str, redis: PrivateRedis) -> SluiceProcess:
    config: dict[str, Any] = {
        "data_dir": str(tmp_path / name),
        "database_url": database,
        "redis_url": redis.url,
        "limits": {"backend": "redis", "redis_prefix": "leases.lim", "lease_seconds": LEASE},
        # 200 tokens at 10 a second: a call that runs for 20 s, five leases.
        "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 10, "reply_tokens": 200}}],
        "models": [{"name": "slow", "deployments": [{"provider": "slow", "model": "slow-1"}]}],
    }
    return SluiceProcess(tmp_path, config, name=name)


def _chat(replica: SluiceProcess, key: str, model: str = "mock-1") -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4 if model == "mock-1" else 200,
    }
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{replica.url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def test_a_killed_replicas_slot_is_free_within_seconds_and_a_live_one_keeps_it(
    tmp_path: Path, database: str, redis: PrivateRedis
) -> None:
    asyncio.run(_migrate(database))
    a = _replica(tmp_path, "a", database, redis).start()
    b = _replica(tmp_path, "b", database, redis)
    try:
        with httpx.Client(base_url=a.url, headers=MASTER, timeout=10) as admin:
            created = admin.post("/admin/v1/keys", json={"name": "one-at-a-time", "workspace_id": "default"}).json()
            assert admin.put(f"/admin/v1/limits/key/{created['id']}", json={"concurrent": 1}).status_code == 200
        key = created["key"]
        b.start()  # after the limit is set: it reads it as it starts

        def slow_call() -> None:
            with contextlib.suppress(httpx.HTTPError):  # its replica is killed under it
                _chat(a, key, "slow")

        running = threading.Thread(target=slow_call, daemon=True)
        running.start()
        deadline = time.monotonic() + 10
        while _chat(b, key) != 429:  # the slow call on A holds the key's one slot
            assert time.monotonic() < deadline, "the running call never took the slot"
            time.sleep(0.1)
        time.sleep(LEASE * 2)  # two leases later the call still runs, so its slot must still be held
        assert _chat(b, key) == 429

        a.kill(signal.SIGKILL)
        killed = time.monotonic()
        while _chat(b, key) != 200:
            assert time.monotonic() - killed < 30, "the killed replica's slot was never freed"
            time.sleep(0.2)
        freed_after = time.monotonic() - killed
        print(f"slot freed {freed_after:.1f} s after the kill")
        assert freed_after < LEASE * 3, f"freed {freed_after:.1f} s after the kill"
    finally:
        a.kill()
        b.stop()
