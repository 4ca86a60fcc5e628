"""The ``Secure`` flag of the UI's session cookie, decided per request.

Starlette's session middleware fixes the flag once, at start-up; the UI's setting ``ui_secure_cookie`` can instead
be ``auto`` (the default), which marks the cookie ``Secure`` whenever the browser reached Sluice over HTTPS: the
connection itself is TLS, or a trusted proxy (``server.trusted_proxies``) says so in ``X-Forwarded-Proto``. A
forwarded scheme from any other peer is ignored, exactly like a forwarded address.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.identity.network import TrustedProxies, parse_address

SESSION_COOKIE = b"session="  # the name Starlette's SessionMiddleware uses (NiceGUI keeps its default)


def forwarded_https(scope: Scope, proxies: TrustedProxies) -> bool:
    """Whether this request reached the first trusted proxy over HTTPS, by that proxy's word."""
    peer = scope.get("client")
    address = parse_address(peer[0]) if peer else None
    if address is None or not any(address.version == n.version and address in n for n in proxies.networks):
        return False
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-proto":
            # The first entry is the scheme the browser used at the edge. A client that forges it only changes its
            # own cookie (a Secure cookie it then cannot send back over HTTP), so nothing is gained by forging.
            return bool(value.decode("latin-1").split(",")[0].strip().lower() == "https")
    return False


def is_https(scope: Scope, proxies: TrustedProxies) -> bool:
    return scope.get("scheme") in ("https", "wss") or forwarded_https(scope, proxies)


class SecureSessionCookie:
    """Adds ``; secure`` to the session cookie of responses to HTTPS requests (``ui_secure_cookie: auto``)."""

    def __init__(self, app: ASGIApp, proxies: Callable[[], TrustedProxies]) -> None:
        self.app = app
        self.proxies = proxies  # read per request: the trusted proxies may change while the gateway runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_https(scope, self.proxies()):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value + b"; secure")
                    if name.lower() == b"set-cookie"
                    and value.startswith(SESSION_COOKIE)
                    and b"; secure" not in value.lower()
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)
