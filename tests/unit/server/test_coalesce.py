"""The coalescing transport: one loop turn's writes reach the connection as one write, in order, and nothing is
held past the turn or sent after an abort."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice.server.coalesce import CoalescingTransport


class RecordingTransport(asyncio.Transport):
    """The real transport's side: what it was asked to write, and whether it was closed or aborted."""

    def __init__(self) -> None:
        super().__init__({"peername": ("127.0.0.1", 5555)})
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.fixture
def inner() -> RecordingTransport:
    return RecordingTransport()


async def test_the_writes_of_one_turn_go_out_together_when_it_ends(inner: RecordingTransport) -> None:
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(b"body")
    assert inner.writes == []
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next turn")
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next turn"]


async def test_close_sends_what_is_held_first(inner: RecordingTransport) -> None:
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last answer")
    transport.close()
    assert inner.events == ["write", "close"] and inner.writes == [b"last answer"]
    await asyncio.sleep(0)  # the flush scheduled by the write finds nothing left
    assert inner.writes == [b"last answer"]


async def test_abort_drops_what_is_held(inner: RecordingTransport) -> None:
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.events == ["abort"] and inner.writes == []


async def test_nothing_is_written_to_a_connection_that_went_away(inner: RecordingTransport) -> None:
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"too late")
    inner.closing = True  # the peer left during the turn
    await asyncio.sleep(0)
    assert inner.writes == []
    assert transport.is_closing()


async def test_connection_details_are_the_real_transports(inner: RecordingTransport) -> None:
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5555)
    assert transport.get_extra_info("sslcontext") is None
