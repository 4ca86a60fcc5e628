"""One aiohttp application served on 127.0.0.1 from a thread with its own event loop.

A private loop in a private thread is what lets a test drive a fake from synchronous code (sync SDK clients
block their thread) and from any other event loop alike, without the two ever sharing a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable

from aiohttp import web

from tests.support.loops import close_loop

_START_TIMEOUT = 10.0
_SHUTDOWN_GRACE = 0.2  # seconds aiohttp lets handlers finish on stop before cancelling them (a hang would block)


class BackgroundServer:
    """Serves the application `make_app` builds on 127.0.0.1 at a free port, until `stop()`."""

    def __init__(self, make_app: Callable[[], web.Application], name: str) -> None:
        self._make_app = make_app
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port: int | None = None
        """The bound port while serving, else None."""
        self.stopping = False
        """True once shutdown began: handlers cancelled from then on were cancelled by us, not by a client."""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> int:
        """Start serving; returns the port once it is listening."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        ready = threading.Event()
        self.stopping = False
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(ready,), name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or self._error is not None or self.port is None:
            error = self._error
            self.stop()
            raise RuntimeError(f"{self._name} failed to start") from error
        return self.port

    def stop(self) -> None:
        """Stop serving, cancel whatever is still being answered, and join the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished on its own
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(_START_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{self._name} did not stop within {_START_TIMEOUT:g} s")
        self._thread = None
        self.port = None

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # handed to start(), which raises it in the test's thread
            self._error = exc
        finally:
            ready.set()
            close_loop(loop)
            self._loop = None

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(
            self._make_app(),
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a client that leaves cancels its handler, so hangs end promptly
            shutdown_timeout=_SHUTDOWN_GRACE,
        )
        await runner.setup()
        # Binding the socket ourselves (port 0) gives the free port without reaching into aiohttp's internals.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            await web.SockSite(runner, sock).start()
            self.port = sock.getsockname()[1]
            ready.set()
            await self._stop_event.wait()
        finally:
            self.stopping = True
            await runner.cleanup()
            sock.close()
