"""The front ASGI app: proxy routes by exact (method, path), everything else to the FastAPI app.

Proxy requests never enter FastAPI's routing, middleware or dependency machinery, which would cost most of the
per-request budget (measured in docs/architecture.md); the admin API, health, docs and UI live in FastAPI.
Unknown paths under a proxy surface's prefix answer in that surface's own error shape. Requests with more headers,
or more header bytes, than ``server.max_header_count`` / ``max_header_bytes`` are refused here with 431 before
anything else looks at them, proxy routes and the FastAPI app alike (SECURITY.md case 21).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import orjson
from starlette.types import ASGIApp

from sluice.errors import HeadersTooLarge, NotFound, SluiceError
from sluice.observability.request_id import REQUEST_ID, request_id_from
from sluice.pipeline import Gateway
from sluice.server.exchange import Exchange, Receive, Scope, Send
from sluice.surfaces.request import Format

RouteHandler = Callable[[Gateway, Exchange], Awaitable[None]]


class MethodNotAllowed(SluiceError):
    status = 405
    kind = "invalid_request"


class ProxyDispatcher:
    def __init__(
        self,
        gateway: Gateway,
        routes: Mapping[tuple[str, str], RouteHandler],
        prefix_routes: Mapping[tuple[str, str], RouteHandler],
        surface_prefixes: Mapping[str, Format],
        fallback: ASGIApp,
        request_id_header: str = "x-request-id",
        max_header_count: int = 100,
        max_header_bytes: int = 32 * 1024,
    ) -> None:
        self.gateway = gateway
        self.routes = dict(routes)
        self.prefix_routes = list(prefix_routes.items())
        self.paths = {path for _method, path in self.routes}
        self.surface_prefixes = sorted(surface_prefixes.items(), key=lambda kv: -len(kv[0]))
        self.fallback = fallback
        self.request_id_header = request_id_header.lower().encode()
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        headers = scope["headers"]
        if len(headers) > self.max_header_count:
            await self._refuse_headers(scope, receive, send, f"more than {self.max_header_count} headers")
            return
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
        if size > self.max_header_bytes:
            await self._refuse_headers(scope, receive, send, f"more than {self.max_header_bytes} bytes of headers")
            return
        method, path = scope["method"], scope["path"]
        handler = self.routes.get((method, path))
        if handler is None:
            handler = self._match_prefix(method, path)
        if handler is None:
            fmt = self._surface_for(path)
            if fmt is None:
                await self.fallback(scope, receive, send)  # the FastAPI app: its middleware makes the id
                return
            handler = self._unknown_endpoint(fmt)
        request_id = request_id_from(scope, self.request_id_header)
        # Every log line of this request carries its id (the handler runs in this task and the tasks it starts).
        token = REQUEST_ID.set(request_id)
        try:
            await handler(self.gateway, Exchange(scope, receive, send, request_id, time.perf_counter()))
        finally:
            REQUEST_ID.reset(token)

    def _unknown_endpoint(self, fmt: Format) -> RouteHandler:
        async def answer(_gateway: Gateway, ex: Exchange) -> None:
            error: SluiceError
            if ex.path in self.paths:
                error = MethodNotAllowed(f"Method {ex.method} is not allowed on {ex.path}.")
            else:
                error = NotFound(f"Unknown endpoint {ex.method} {ex.path}.", code="unknown_endpoint")
            status, body = fmt.error_response(error)
            await ex.respond(status, body)

        return answer

    async def _refuse_headers(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        """431 in the shape of the API the path belongs to (the admin API's shape elsewhere)."""
        ex = Exchange(scope, receive, send, request_id_from(scope, self.request_id_header), time.perf_counter())
        error = HeadersTooLarge(f"The request has {what}; send fewer or smaller headers.")
        fmt = self._surface_for(ex.path)
        if fmt is not None:
            status, body = fmt.error_response(error)
        else:
            status = error.status
            body = orjson.dumps({"error": {"type": error.kind, "message": error.message, "code": None, "param": None}})
        await ex.respond(status, body, headers=[(b"connection", b"close")])

    def _match_prefix(self, method: str, path: str) -> RouteHandler | None:
        for (route_method, prefix), handler in self.prefix_routes:
            if method == route_method and path.startswith(prefix) and len(path) > len(prefix):
                return handler
        return None

    def _surface_for(self, path: str) -> Format | None:
        for prefix, fmt in self.surface_prefixes:
            if path.startswith(prefix):
                return fmt
        return None
