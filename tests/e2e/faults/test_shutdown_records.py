"""Issue 23 item 9: a stream still running when the graceful shutdown period ends is recorded as cut, not as 200."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
from sqlalchemy import select

from sluice.store.db import Database
from sluice.store.models import UsageRecord
from tests.support.server import MASTER_KEY, SluiceServer, make_settings


async def _records(url: str) -> list[tuple[str | None, int, str | None]]:
    db = Database(url)
    try:
        async with db.session() as session:
            rows = (await session.execute(select(UsageRecord))).scalars().all()
            return [(row.model, row.status, row.error_type) for row in rows]
    finally:
        await db.close()


def test_a_stream_cut_by_shutdown_is_recorded_as_cut(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        {
            # 200 tokens at 4 a second: still streaming long after the test server's 10 s graceful period.
            "providers": [{"name": "slow", "kind": "mock", "mock": {"tokens_per_second": 4, "reply_tokens": 200}}],
            "models": [{"name": "slow", "deployments": [{"provider": "slow", "model": "slow-1"}]}],
        },
    )
    server = SluiceServer(settings).start()
    first_chunk = threading.Event()

    def stream() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        try:
            with httpx.stream(
                "POST", f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=60
            ) as response:
                for _ in response.iter_bytes():
                    first_chunk.set()
        except httpx.HTTPError:
            pass  # the server went away mid-stream: that is the point

    client = threading.Thread(target=stream, daemon=True)
    client.start()
    try:
        assert first_chunk.wait(20), "the stream never started"
    finally:
        server.stop()
    client.join(30)
    # The spool was shipped as the server stopped.
    assert asyncio.run(_records(settings.resolved_database_url)) == [("slow", 503, "cut_at_shutdown")]
