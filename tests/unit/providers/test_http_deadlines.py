"""The upstream client's deadlines against a real local server: first byte, then idle between stream chunks.

``first_byte`` bounds the wait for the response headers and the first chunk; ``idle`` alone bounds each gap after
that, whichever of the two is longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from sluice.config import Timeouts
from sluice.errors import UpstreamTimeout
from sluice.providers.http import HttpUpstream


async def _paced(request: web.Request) -> web.StreamResponse:
    """``/stream?before=S&gap=S``: headers, wait ``before``, chunk one, wait ``gap``, chunk two, end."""
    before = float(request.query.get("before", "0"))
    gap = float(request.query.get("gap", "0"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)  # a StreamResponse sends its headers at once, on their own
    await asyncio.sleep(before)
    await response.write(b"data: one\n\n")
    await asyncio.sleep(gap)
    await response.write(b"data: two\n\n")
    await response.write_eof()
    return response


@pytest.fixture
async def pool() -> AsyncIterator[HttpUpstream]:
    app = web.Application()
    app.router.add_get("/stream", _paced)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstream = HttpUpstream(f"http://127.0.0.1:{port}", {}, max_connections=4)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()
        await runner.cleanup()


async def _chunks(pool: HttpUpstream, query: str, timeouts: Timeouts) -> bytes:
    response = await pool.request("GET", "/stream?" + query, timeouts)
    return b"".join([chunk async for chunk in response.iter_chunks()])


async def test_a_gap_longer_than_first_byte_but_within_idle_is_not_cut(pool: HttpUpstream) -> None:
    timeouts = Timeouts(connect=1, first_byte=0.3, idle=3, total=10)
    assert await _chunks(pool, "gap=1.0", timeouts) == b"data: one\n\ndata: two\n\n"


async def test_a_gap_longer_than_idle_is_cut_even_when_first_byte_is_longer(pool: HttpUpstream) -> None:
    timeouts = Timeouts(connect=1, first_byte=5, idle=0.3, total=10)
    with pytest.raises(UpstreamTimeout) as cut:
        await _chunks(pool, "gap=2", timeouts)
    assert "nothing for 0.3 s" in cut.value.message


async def test_the_first_chunk_is_bounded_by_first_byte_not_idle(pool: HttpUpstream) -> None:
    timeouts = Timeouts(connect=1, first_byte=0.3, idle=5, total=10)
    with pytest.raises(UpstreamTimeout) as cut:
        await _chunks(pool, "before=2", timeouts)
    assert "within 0.3 s" in cut.value.message


async def test_a_first_chunk_within_first_byte_is_read_whatever_idle_says(pool: HttpUpstream) -> None:
    timeouts = Timeouts(connect=1, first_byte=3, idle=0.3, total=10)
    assert await _chunks(pool, "before=1.0", timeouts) == b"data: one\n\ndata: two\n\n"
