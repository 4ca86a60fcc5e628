"""The frame every page shares: header, navigation by role, dark mode, and small helpers for forms and dialogs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from sluice.web.client import ApiError
from sluice.web.session import me, role_at_least, sign_out

ADMIN_PAGES = [
    ("Overview", "/admin", "owner"),
    ("Users", "/admin/users", "owner"),
    ("API keys", "/admin/keys", "viewer"),
    ("Invitations", "/admin/invites", "owner"),
    ("IP rules", "/admin/ip-rules", "owner"),
    ("Usage", "/admin/usage", "viewer"),
    ("Limits", "/admin/limits", "owner"),
    ("Queues", "/admin/queues", "owner"),
    ("Models", "/admin/models", "admin"),
    ("Audit log", "/admin/audit", "owner"),
]


def frame(title: str) -> None:
    """Header with navigation for the signed-in user's role, and the page title."""
    dark = ui.dark_mode()
    who = me()
    with ui.header().classes("items-center justify-between bg-slate-800"):
        with ui.row().classes("items-center gap-4"):
            ui.label("Sluice").classes("text-lg font-bold")
            ui.link("Chat", "/chat").classes("text-white")
            for label, path, role in ADMIN_PAGES:
                if role_at_least(role):
                    ui.link(label, path).classes("text-white")
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{who.get('user', {}).get('email', '')} · {who.get('role', '')}").classes("text-sm")
            ui.button(icon="dark_mode", on_click=dark.toggle).props("flat round color=white aria-label='Dark mode'")
            ui.link("Account", "/account").classes("text-white")

            async def logout() -> None:
                await sign_out()
                ui.navigate.to("/login")

            ui.button("Sign out", on_click=logout).props("flat color=white")
    ui.label(title).classes("text-2xl font-semibold mt-2")


def show_error(error: ApiError, fields: dict[str, Any] | None = None) -> None:
    """The gateway's message as a notification, and on the form field it names when there is one."""
    ui.notify(error.message, type="negative", multi_line=True)
    if fields and error.field and error.field in fields:
        element = fields[error.field]
        element.props(f'error error-message="{error.message}"')


def clear_errors(fields: dict[str, Any]) -> None:
    for element in fields.values():
        element.props(remove="error error-message")


def confirm(question: str, action: Callable[[], Awaitable[None]], label: str = "Confirm") -> None:
    """Ask before a destructive action."""
    with ui.dialog() as dialog, ui.card():
        ui.label(question)
        with ui.row():
            ui.button("Cancel", on_click=dialog.close).props("flat")

            async def go() -> None:
                dialog.close()
                await action()

            ui.button(label, on_click=go).props("color=negative")
    dialog.open()


async def attempt(action: Callable[[], Awaitable[Any]], fields: dict[str, Any] | None = None) -> Any:
    """Run an API action; show its error instead of raising. Returns the result, or None on failure."""
    if fields:
        clear_errors(fields)
    try:
        return await action()
    except ApiError as exc:
        show_error(exc, fields)
        return None
