"""Security headers on every response of the web UI (its pages, assets and API calls under ``/ui``).

- ``Content-Security-Policy``: everything from this origin only — scripts, styles, fonts, the websocket — no
  plugins, no framing (``frame-ancestors 'none'``), forms posting nowhere else. Images only from this origin or
  inline data, so even an answer that slipped an ``<img>`` past the renderer could not make the browser fetch an
  outside URL. NiceGUI needs two allowances: ``'unsafe-inline'`` (its page template starts the app with inline
  scripts, and Quasar sets inline styles) and ``'unsafe-eval'`` (its client compiles event handlers and
  JavaScript sent by the server with ``eval``); nothing of Sluice's own is inline (``static/chat.js``).
- ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: DENY`` (for browsers without CSP 3).
- ``Referrer-Policy: no-referrer``: following a link out of an answer tells its site nothing about the gateway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_NAMES = {name for name, _ in HEADERS}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in _NAMES]
                message["headers"] = kept + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
