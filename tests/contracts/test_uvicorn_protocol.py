"""Contract: uvicorn's ``HttpToolsProtocol``, which ``server/protocol.py`` subclasses (pyproject: uvicorn <0.56).

``GuardedHttpToolsProtocol`` overrides six of its hooks (``connection_made``, ``connection_lost``, ``data_received``,
``on_message_begin``, ``on_headers_complete``, ``on_response_complete``), reads its attributes ``loop``,
``connections`` (the server's shared set of open connections), ``server_state`` (where the connection table is
kept), ``client`` (the peer address), ``url`` (the request target so far), ``pipeline`` (the queue of pipelined
requests) and ``transport``, and swaps ``app`` for one request (what ``on_headers_complete`` starts). None of this
is uvicorn's public API: a release that renames or re-plumbs any of it fails here, by name, before raising the
bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from sluice.server.coalesce import CoalescingTransport
from sluice.server.protocol import ConnectionLimits, GuardedHttpToolsProtocol

HOOKS = [
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_response_complete",
]


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


class _Served:
    def __init__(self) -> None:
        self.state = ServerState()
        self.protocols: list[GuardedHttpToolsProtocol] = []
        self.port = 0


@pytest.fixture
async def served() -> AsyncIterator[_Served]:
    served = _Served()
    config = Config(app=_hello, lifespan="off", http="httptools", log_level="warning")

    def factory() -> GuardedHttpToolsProtocol:
        protocol = GuardedHttpToolsProtocol(
            config=config,
            server_state=served.state,
            app_state={},
            limits=ConnectionLimits(header_timeout=0.3, max_connections=10, reserved=2),
        )
        served.protocols.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()


def test_the_hooks_the_guard_overrides_are_uvicorns_with_the_same_parameters() -> None:
    for name in HOOKS:
        theirs = inspect.signature(getattr(HttpToolsProtocol, name))
        ours = inspect.signature(getattr(GuardedHttpToolsProtocol, name))
        assert list(theirs.parameters) == list(ours.parameters), name


def test_the_constructor_takes_config_server_state_and_app_state() -> None:
    assert list(inspect.signature(HttpToolsProtocol.__init__).parameters)[:4] == [
        "self",
        "config",
        "server_state",
        "app_state",
    ]


async def test_a_connection_carries_the_state_the_guard_reads_and_is_answered(served: _Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: contract\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
        (protocol,) = served.protocols
        assert protocol.loop is asyncio.get_running_loop()
        assert protocol.server_state is served.state and protocol in served.state.connections
        assert isinstance(protocol.pipeline, deque)
        assert isinstance(protocol.transport, CoalescingTransport)  # uvicorn writes through what we handed it
        assert protocol.client is not None and protocol.client[0] == "127.0.0.1"
        assert protocol.url == b"/"  # the request target as parsed (the reserve reads its path)
        assert callable(protocol.app)  # what on_headers_complete starts (swapped for the reserve's 503)
        assert "app = self.app" in inspect.getsource(HttpToolsProtocol.on_headers_complete)
    finally:
        writer.close()


async def test_a_silent_connection_is_closed_after_the_header_timeout(served: _Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the guard's timer, not by the client
        (protocol,) = served.protocols
        assert protocol not in served.state.connections  # connection_lost reached uvicorn's own bookkeeping
    finally:
        writer.close()
