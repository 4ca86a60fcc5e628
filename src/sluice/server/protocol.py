"""The HTTP/1.1 connection protocol Sluice serves with: uvicorn's httptools protocol, bounded against idle abuse.

uvicorn arms no timer until a first response is complete, and any byte a client sends cancels its keep-alive timer,
so a connection that sends nothing, or a request's headers one byte at a time, would be held open forever. Here a
connection must complete its request headers within ``header_timeout`` of connecting (or of its previous response),
and connections beyond ``max_connections`` are closed at once, so thousands of idle or slow clients cost bounded
file descriptors while everyone else (and ``/health``) is still served. Timers are per connection, not per byte.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluice.server.coalesce import CoalescingTransport


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, header_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._out: CoalescingTransport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._out = CoalescingTransport(transport, self.loop)  # one send per response or turn (coalesce.py)
        super().connection_made(self._out)
        if len(self.connections) > self.max_connections:
            # Refused fast: closing costs less than serving, and the slot goes back to the bound at once.
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # The answer is whole: send it now, before the request's own bookkeeping runs (not at the end of the turn).
        self._out.flush()
        # A pipelined request already has its headers (uvicorn starts it now); otherwise the connection waits for
        # the next request: uvicorn's keep-alive timer covers silence, this one headers that trickle in.
        waiting = not self.pipeline
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
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


def guarded_protocol(header_timeout: float, max_connections: int) -> Callable[..., GuardedHttpToolsProtocol]:
    """The protocol factory for uvicorn's ``http`` option (picklable, so ``--workers`` can pass it on)."""
    return functools.partial(GuardedHttpToolsProtocol, header_timeout=header_timeout, max_connections=max_connections)
