"""A transport that sends what one loop turn wrote to a connection in one system call.

uvicorn writes a response's status line and headers, then its body, each with its own ``transport.write``; asyncio
sends each at once, so every non-streamed answer cost two ``send`` calls and usually two TCP segments (the client
then wakes twice). :class:`CoalescingTransport` keeps the writes of the current loop turn and hands them to the
real transport together when the turn ends (``call_soon``), or at once when the connection protocol says the
response is complete (:meth:`flush`, so the request's bookkeeping after its last byte does not delay it). An
answer goes out in one call, and a stream's events that arrive in the same turn share one. Nothing waits longer
than the rest of the turn it was written in.

Everything else — flow control, closing, the connection's details — is the real transport's: a close or
``write_eof`` sends what is held first; an abort drops it, as an abort drops the real transport's buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport(asyncio.Transport):
    __slots__ = ("_inner", "_loop", "_pending")

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] = []

    # --- writing ------------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Hand the held writes to the real transport now."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if self._inner.is_closing():
            return  # the connection is gone: asyncio would only count (and then log) writes to it
        self._inner.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + sum(len(data) for data in self._pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._inner.write_eof()

    # --- closing ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.flush()
        self._inner.close()

    def abort(self) -> None:
        self._pending = []
        self._inner.abort()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    # --- everything else is the real transport's ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()
