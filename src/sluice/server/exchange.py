"""One HTTP exchange on the proxy path, on raw ASGI.

The proxy routes skip the framework's request/response machinery (it costs most of the per-request budget, see
``docs/architecture.md``): an :class:`Exchange` reads the body with a hard size bound, sends complete or streamed
responses, and watches for the client going away. When it does, the handler task is cancelled, so whatever the
handler is awaiting (a queue slot, an upstream response, the next stream chunk) is abandoned at once and its
``finally`` blocks release the slot and close the upstream connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from sluice.errors import InvalidRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
SSE = b"text/event-stream"
NDJSON = b"application/x-ndjson"


class ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


class Exchange:
    __slots__ = (
        "_headers",
        "_watcher",
        "client_gone",
        "content_type",
        "header_hook",
        "receive",
        "recording",
        "request_id",
        "responded",
        "response_headers",
        "scope",
        "send",
        "started",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, request_id: str, started: float) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request_id = request_id
        self.started = started
        self.status = 0
        self.responded = False  # the final body frame is being sent; a disconnect now is a normal close
        self.client_gone = False
        self.response_headers: list[tuple[bytes, bytes]] = []
        self._headers: dict[bytes, bytes] | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Called as the response starts, for headers only known then (timings, the deployment used).
        self.header_hook: Callable[[], list[tuple[bytes, bytes]]] | None = None
        # When a list, every body byte sent is also appended here (the response cache records answers this way).
        self.recording: list[bytes] | None = None
        self.content_type = b""

    # --- request ----------------------------------------------------------------------------------------------

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: bytes) -> bytes | None:
        """A request header by lower-case name (the last one wins, as most servers do)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = dict(self.scope["headers"])
        return headers.get(name)

    @property
    def client_host(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    async def body(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes whatever Content-Length claims."""
        declared = self.header(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
            except ValueError:
                raise InvalidRequest("Invalid Content-Length header.") from None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # --- disconnect watching ------------------------------------------------------------------------------------

    def watch_disconnect(self) -> None:
        """Cancel the current task if the client goes away before the response is complete."""
        task = asyncio.current_task()
        if task is None or self._watcher is not None:
            return
        self._watcher = asyncio.get_running_loop().create_task(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        message = await self.receive()
        if message["type"] == "http.disconnect" and not self.responded:
            self.client_gone = True
            task.cancel()

    def connected(self) -> bool:
        """False once the client is known to have gone, even before the watcher has run.

        The server marks the connection lost in the loop turn that reads the close; the watcher that cancels the
        handler runs a turn later (more on a busy loop). The queue asks here before it grants a slot, so a waiter
        whose client left in between is never sent upstream.
        """
        if self.client_gone:
            return False
        cycle = getattr(self.receive, "__self__", None)  # uvicorn's request cycle keeps the flag
        if getattr(cycle, "disconnected", False) and not self.responded:
            self.client_gone = True
            return False
        return True

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    # --- response ---------------------------------------------------------------------------------------------

    def _start_message(self, status: int, content_type: bytes, headers: Iterable[tuple[bytes, bytes]]) -> Message:
        self.status = status
        self.content_type = content_type
        raw = [(b"content-type", content_type), (b"x-request-id", self.request_id.encode())]
        raw.extend(self.response_headers)
        if self.header_hook is not None:
            raw.extend(self.header_hook())
        raw.extend(headers)
        return {"type": "http.response.start", "status": status, "headers": raw}

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        start = self._start_message(status, content_type, headers)
        start["headers"].append((b"content-length", str(len(body)).encode()))
        self.responded = True
        if self.recording is not None:
            self.recording.append(body)
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def start_stream(self, status: int, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        start = self._start_message(status, content_type, headers)
        start["headers"].append((b"cache-control", b"no-cache"))
        await self.send(start)

    async def write(self, data: bytes) -> None:
        if self.client_gone:
            raise ClientGone
        if data:
            if self.recording is not None:
                self.recording.append(data)
            await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self, data: bytes = b"") -> None:
        self.responded = True
        if data and self.recording is not None:
            self.recording.append(data)
        await self.send({"type": "http.response.body", "body": data, "more_body": False})
