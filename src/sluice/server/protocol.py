"""The HTTP/1.1 connection protocol Sluice serves with: uvicorn's httptools protocol, bounded against idle abuse.

uvicorn arms no timer until a first response is complete, and any byte a client sends cancels its keep-alive timer,
so a connection that sends nothing, or a request's headers one byte at a time, would be held open forever. Here a
connection must complete its request headers within ``header_timeout`` of connecting (or of its previous response),
and the number of connections is bounded by :class:`~sluice.server.connections.ConnectionTable` (the idlest goes
first, a reserve is kept for ``/health``, one client address holds a bounded share), so thousands of idle or slow
clients cost bounded file descriptors while everyone else (and ``/health``) is still served. Timers are per
connection, not per byte.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluice.server.coalesce import CoalescingTransport
from sluice.server.connections import RESERVED_PATHS, ConnectionTable


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    max_connections: int
    reserved: int = 16
    per_client: int = 256
    trusted: tuple[str, ...] = ()
    max_header_bytes: int = 32 * 1024
    max_header_count: int = 100

    @property
    def raw_header_bytes(self) -> int:
        """Bytes a request may send before its headers are complete: the headers' names and values, their framing
        (": " and CRLF), and a request line of up to 8 KiB. The dispatcher checks the exact figures afterwards."""
        return self.max_header_bytes + 4 * self.max_header_count + 8 * 1024

    def table(self) -> ConnectionTable:
        return ConnectionTable(self.max_connections, self.reserved, self.per_client, self.trusted)


_RESERVE_BODY = orjson.dumps(
    {
        "error": {
            "type": "server_error",
            "message": "The server is at its connection limit; only health checks are answered now.",
            "code": "connection_limit",
            "param": None,
        }
    }
)


def _headers_too_large(limit: int) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "type": "headers_too_large",
                "message": f"The request line and headers exceed {limit} bytes; send fewer or smaller headers.",
                "code": "request_header_fields_too_large",
                "param": None,
            }
        }
    )
    head = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


async def _reserve_only(_scope: Any, _receive: Any, send: Any) -> None:
    """The answer to anything but a health check on a connection admitted into the reserve."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_RESERVE_BODY)).encode()),
        (b"connection", b"close"),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _RESERVE_BODY})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = limits.header_timeout
        self._header_limit = limits.raw_header_bytes
        self._header_bytes = 0  # received since the current request began, while its headers are incomplete
        self._in_headers = True
        self._began_in_feed = False
        table = getattr(self.server_state, "sluice_connections", None)
        if table is None:  # one table per server process, shared by its connections
            table = limits.table()
            self.server_state.sluice_connections = table  # type: ignore[attr-defined]
        self._table: ConnectionTable = table
        self._reserve_only = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._out: CoalescingTransport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._out = CoalescingTransport(transport, self.loop)  # one send per response or turn (coalesce.py)
        super().connection_made(self._out)
        verdict = self._table.admit(self, self.client[0] if self.client else None)
        if verdict is False:
            # Refused fast (every connection is busy): closing costs less than serving.
            transport.abort()
            return
        self._reserve_only = verdict is None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        self._began_in_feed = False
        super().data_received(data)
        if not self._in_headers or self._began_in_feed:
            # A read in which a request began may also hold the previous request's body: it is not counted (at most
            # one read is missed, where counting it could refuse a request whose headers are small).
            return
        # The parser keeps an unfinished header (or URL) whole until it ends: count what it holds, refuse once
        # over the bound, so a 64 MiB header costs at most the bound plus two reads, not 64 MiB (issue 16.11).
        self._header_bytes += len(data)
        if self._header_bytes > self._header_limit and not self.transport.is_closing():
            self._disarm_header_timer()
            self.transport.write(_headers_too_large(self._header_limit))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._began_in_feed = True
        self._header_bytes = 0

    def close_idle(self) -> None:
        """Closed to make room for a new connection (this one was the idlest)."""
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        self._table.closed(self)
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_timer()
        self._table.busy(self)
        if self._reserve_only and self.url.partition(b"?")[0] not in RESERVED_PATHS:
            app = self.app
            self.app = _reserve_only
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # The answer is whole: send it now, before the request's own bookkeeping runs (not at the end of the turn).
        self._out.flush()
        # A pipelined request already has its headers (uvicorn starts it now); otherwise the connection waits for
        # the next request: uvicorn's keep-alive timer covers silence, this one headers that trickle in.
        waiting = not self.pipeline
        super().on_response_complete()
        if self._reserve_only:
            self.transport.close()  # one answer per reserved connection: the reserve is for the next health check
            return
        if waiting and not self.transport.is_closing():
            self._table.idle(self)
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> Callable[..., GuardedHttpToolsProtocol]:
    """The protocol factory for uvicorn's ``http`` option (picklable, so ``--workers`` can pass it on)."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits)
