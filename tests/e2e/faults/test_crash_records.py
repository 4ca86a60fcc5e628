"""Issue 23 item 4: calls in flight on a replica killed with kill -9 are recorded (estimated) when it restarts.

Before, the upstream served them and no usage record ever said so.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from sluice.config import sqlite_url
from sluice.store.db import Database
from sluice.store.models import UsageRecord
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

CALLS = 3


async def _records(url: str) -> list[UsageRecord]:
    db = Database(url)
    try:
        async with db.session() as session:
            return list((await session.execute(select(UsageRecord))).scalars().all())
    finally:
        await db.close()


def test_calls_cut_by_kill_9_are_recorded_as_estimated_after_the_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config: dict[str, Any] = {
        "data_dir": str(data),
        # 100 tokens at 5 a second: still running when the process is killed.
        "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 5, "reply_tokens": 100}}],
        "models": [
            {
                "name": "slow",
                "price": {"input": 1.0, "output": 1.0},
                "deployments": [{"provider": "slow", "model": "slow-1"}],
            }
        ],
    }
    gateway = SluiceProcess(tmp_path, config).start()
    started = threading.Barrier(CALLS + 1, timeout=30)

    def call() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "stream": True}
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream(
                "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=60
            ) as response,
        ):
            chunks = response.iter_bytes()
            next(chunks)  # the upstream is answering: the call is in flight
            started.wait()
            for _ in chunks:
                pass

    clients = [threading.Thread(target=call, daemon=True) for _ in range(CALLS)]
    for client in clients:
        client.start()
    started.wait()
    gateway.kill(signal.SIGKILL)
    for client in clients:
        client.join(10)
    assert asyncio.run(_records(sqlite_url(data))) == []  # nothing recorded them before they ended

    gateway.start()  # the same data directory and spool
    try:
        deadline = time.monotonic() + 30
        records = asyncio.run(_records(sqlite_url(data)))
        while len(records) < CALLS and time.monotonic() < deadline:
            time.sleep(0.2)
            records = asyncio.run(_records(sqlite_url(data)))
    finally:
        gateway.stop()
    assert len(records) == CALLS
    for record in records:
        assert record.model == "slow" and record.estimated and record.error_type == "orphaned"
        assert record.completion_tokens == 100 and record.cost_nanos > 0  # what was reserved for it
