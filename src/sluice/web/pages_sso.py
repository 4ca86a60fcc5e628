"""Single sign-on in the UI: the "Sign in with …" buttons on the sign-in page, and the page a finished sign-in lands
on (``/ui/sso?ticket=…``), which redeems the single-use ticket server-side and keeps the session like a password
sign-in does. The browser never holds a token: the ticket is good once, for two minutes, and only the UI's server
side turns it into the session's tokens."""

from __future__ import annotations

from typing import Any

import httpx
from nicegui import ui

from sluice.web.client import ADMIN, ApiError
from sluice.web.context import UiContext
from sluice.web.layout import heading, page_head
from sluice.web.session import sign_in_with_ticket


async def sso_state(context: UiContext) -> dict[str, Any]:
    """The configured providers and whether password sign-in is on (``GET /admin/v1/auth/sso/providers``)."""
    try:
        response = await context.http().get(f"{ADMIN}/auth/sso/providers")
    except httpx.HTTPError:
        return {}
    return dict(response.json()) if response.status_code == 200 else {}


def _origin() -> str:
    """The gateway's address as the browser sees it (the start URL lies outside the UI's /ui prefix)."""
    url = ui.context.client.request.url
    return f"{url.scheme}://{url.netloc}"


def sso_buttons(state: dict[str, Any], error: str) -> None:
    """One button per provider, and the message a failed single sign-on came back with."""
    if error:
        ui.label(error).classes("text-negative text-sm").mark("sso-error")
    providers = state.get("providers") or []
    if not providers:
        return
    if state.get("password_login", True):
        ui.separator()
    origin = _origin()
    for provider in providers:
        target = origin + str(provider["start_url"])
        ui.button(f"Sign in with {provider['label']}", on_click=lambda t=target: ui.navigate.to(t)).classes(
            "w-full"
        ).props("outline no-caps").mark(f"sso-{provider['name']}")


async def sso_page(context: UiContext, ticket: str = "") -> None:
    ui.page_title("Sluice · Signing in")
    page_head()
    try:
        await sign_in_with_ticket(context, ticket)
    except ApiError as exc:
        with ui.card().classes("absolute-center w-96 max-w-[95vw]"):
            heading("Sign-in failed", 1, "text-xl font-semibold")
            ui.label(exc.message).mark("sso-error")
            ui.link("Back to sign-in", "/login")
        return
    ui.navigate.to("/chat")
