"""A request-body bound for every route outside the proxy: admin API, auth, health, docs and UI.

The proxy routes read their bodies with their own bound (``server.max_body_bytes``, :meth:`Exchange.body`); the
FastAPI app behind them read whatever it was sent (an unauthenticated 150 MiB POST to the login route was read and
parsed: +315 MB RSS, issue 16.4). :class:`BodyLimit` wraps that app and holds every request to
``server.max_admin_body_bytes`` while the body is read, not after:

- a declared ``Content-Length`` over the bound is refused before a byte of the body is read;
- a body that turns out longer than declared (uvicorn passes on at most what was declared, the rest is the next
  request's, so this is chunked bodies in practice) is refused the moment it crosses the bound.

The refusal is a 413 in the route's own shape (the admin API's JSON error; plain text for the UI's pages) with
``Connection: close``, so the server stops reading the rest. Whatever the app does after its ``receive`` failed
(FastAPI may turn the failure into a 400 or a 500) is dropped: the 413 is the answer.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_PREFIXES = ("/ui", "/_nicegui")


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body crosses the bound (the 413 has already been sent)."""


class BodyLimit:
    """Pure ASGI middleware: no buffering, one counter per request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self.refuse(scope, send)
            return
        state = _Request(self, scope, receive, send)
        try:
            await self.app(scope, state.receive, state.send)
        except BodyTooLarge:
            pass
        except Exception:
            if not state.refused:
                raise
            # the app re-raised (or failed on) the refused read: the client already has its 413

    async def refuse(self, scope: Scope, send: Send) -> None:
        message = f"The request body is larger than the limit of {self.limit} bytes."
        path = str(scope.get("path", ""))
        if path.startswith(UI_PREFIXES):
            body, content_type = message.encode(), b"text/plain; charset=utf-8"
        else:
            error = {"type": "payload_too_large", "message": message, "code": "request_too_large", "param": None}
            body, content_type = orjson.dumps({"error": error}), b"application/json"
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _Request:
    """One request's ``receive`` and ``send``, counting body bytes and answering 413 once the bound is crossed."""

    __slots__ = ("_limit", "_receive", "_scope", "_send", "received", "refused", "started")

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self._limit = limit
        self._scope = scope
        self._receive = receive
        self._send = send
        self.received = 0
        self.started = False  # a response has begun (the app's or the 413)
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit.limit:
                if not self.started:
                    self.started = True
                    await self._limit.refuse(self._scope, self._send)
                self.refused = True
                raise BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 was the answer; the app's reaction to its failed read is not sent
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses a malformed length before an app ever sees it
    return None
