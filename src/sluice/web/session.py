"""The signed-in browser: its tokens and identity in NiceGUI's server-side user storage (keyed by a signed,
HTTP-only session cookie), and the :class:`GatewayClient` that acts for it."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

import httpx
from nicegui import app, ui

from sluice.identity.network import BROWSER_HEADER
from sluice.web.client import ADMIN, GatewayClient, Tokens, error_of
from sluice.web.context import UiContext

ROLE_RANK = {"viewer": 1, "member": 2, "owner": 3, "admin": 4}


def forget() -> None:
    """End the browser's sign-in; its preferences (dark mode) stay."""
    for name in ("access", "refresh", "me"):
        app.storage.user.pop(name, None)


def _store(tokens: Tokens | None) -> None:
    if tokens is None:
        forget()
    else:
        app.storage.user.update(access=tokens.access, refresh=tokens.refresh)


def browser_headers(context: UiContext) -> dict[str, str]:
    """The header naming the browser this page serves, for the API calls made on its behalf.

    The UI reaches the API over loopback, so without it every browser would share the UI's own address (one
    browser's failed sign-ins would lock everyone out; IP rules would judge 127.0.0.1). The browser's address
    comes from its page request through the trusted-proxies rule, and is signed so the API believes it only from
    here (see :mod:`sluice.identity.network`).
    """
    try:
        page = ui.context.client.request
    except RuntimeError:  # no page behind this call: the API sees the UI's own address
        return {}
    proxies = context.proxies()
    forwarded = page.headers.get("x-forwarded-for")
    address = proxies.client_address(
        page.client.host if page.client else None, forwarded.encode("latin-1") if forwarded is not None else None
    )
    return {BROWSER_HEADER.decode(): proxies.vouch(address)} if address is not None else {}


def gateway(context: UiContext) -> GatewayClient | None:
    """The signed-in user's client, or None."""
    stored = app.storage.user
    if "access" not in stored:
        return None
    return GatewayClient(context.http(), Tokens(stored["access"], stored["refresh"]), _store, browser_headers(context))


def me() -> dict[str, Any]:
    return dict(app.storage.user.get("me") or {})


def role_at_least(role: str) -> bool:
    return ROLE_RANK.get(str(me().get("role")), 0) >= ROLE_RANK[role]


async def sign_in(context: UiContext, email: str, password: str, workspace_id: str | None) -> None:
    """Log in through the API (its throttling and answers apply); raises ApiError with its message."""
    body: dict[str, Any] = {"email": email, "password": password}
    if workspace_id:
        body["workspace_id"] = workspace_id
    response = await context.http().post(f"{ADMIN}/auth/login", json=body, headers=browser_headers(context))
    if response.status_code != 200:
        raise error_of(response)
    tokens = response.json()
    _store(Tokens(tokens["access_token"], tokens["refresh_token"]))
    client = gateway(context)
    assert client is not None
    app.storage.user["me"] = await client.admin("GET", "/me")


async def sign_in_with_ticket(context: UiContext, ticket: str) -> None:
    """Finish a single sign-on: redeem its single-use ticket for the session's tokens (raises ApiError)."""
    response = await context.http().post(
        f"{ADMIN}/auth/sso/ticket", json={"ticket": ticket[:256]}, headers=browser_headers(context)
    )
    if response.status_code != 200:
        raise error_of(response)
    tokens = response.json()
    _store(Tokens(tokens["access_token"], tokens["refresh_token"]))
    client = gateway(context)
    assert client is not None
    app.storage.user["me"] = await client.admin("GET", "/me")


async def sign_out(context: UiContext, after: str | None = None) -> str | None:
    """End the session; the identity provider's logout page to visit next, for a single sign-on user (``after``:
    where that page sends the browser back to)."""
    client = gateway(context)
    end_session: str | None = None
    if client is not None:
        with contextlib.suppress(httpx.HTTPError):
            params = f"?after={quote(after)}" if after else ""
            response = await client.request("POST", f"{ADMIN}/auth/sso/logout{params}")
            if response.status_code == 200:
                end_session = response.json().get("end_session_url")
    forget()
    return end_session


def require(context: UiContext, role: str = "viewer") -> GatewayClient | None:
    """The client for a page that needs ``role``; otherwise send the browser where it belongs."""
    client = gateway(context)
    if client is None:
        ui.navigate.to("/login")
        return None
    if not role_at_least(role):
        ui.navigate.to("/chat")
        return None
    return client
