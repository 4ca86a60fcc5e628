"""Request ids: honoured or made at the edge, returned on every response, and on every log line of the request.

Both doors set one: the proxy dispatcher for proxy routes, :class:`RequestIdMiddleware` for everything the FastAPI
app serves (admin API, health, docs, UI). Each sets :data:`REQUEST_ID` for the task handling the request, and
:func:`add_request_id` (in the processor chain of structlog and of standard-library records alike) puts it on every
log line emitted meanwhile. One ContextVar set and reset per request costs about a tenth of a microsecond;
structlog's own ``bind_contextvars`` builds a dict of tokens per call and ``merge_contextvars`` copies the context
on every line, which the access line would pay on the hot path.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.types import EventDict, WrappedLogger

# The request being handled by the current task (None outside requests: start-up, background loops).
REQUEST_ID: ContextVar[str | None] = ContextVar("sluice_request_id", default=None)

# Where the FastAPI side finds the id in the ASGI scope (the audit rows of admin changes read it there).
SCOPE_KEY = "sluice.request_id"
RESPONSE_HEADER = b"x-request-id"

_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id_from(scope: Scope, header: bytes) -> str:
    """Honour a sane incoming request id (1-128 of ``A-Z a-z 0-9 . _ : -``); otherwise make one (96 random bits)."""
    for name, value in scope["headers"]:
        if name == header:
            if _SANE.fullmatch(value):
                return bytes(value).decode()
            break
    return os.urandom(12).hex()


def add_request_id(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """structlog processor: the current request's id, unless the line names one itself."""
    current = REQUEST_ID.get()
    if current is not None and "request_id" not in event:
        event["request_id"] = current
    return event


def scope_request_id(scope: Scope) -> str | None:
    """The id :class:`RequestIdMiddleware` gave this request."""
    found: Any = scope.get(SCOPE_KEY)
    return found if isinstance(found, str) else None


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: no extra task or body buffering per request) around the FastAPI app.

    It wraps the whole app, outside Starlette's own error middleware, so even a 500 answer carries the id.
    """

    def __init__(self, app: ASGIApp, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope, self.header)
        scope[SCOPE_KEY] = request_id
        header = (RESPONSE_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
