"""The frame every page shares: header, navigation by role, dark mode, and small helpers for forms and dialogs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import app, ui
from nicegui.elements.mixins.validation_element import ValidationElement

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
DARK = "dark"  # the user-storage entry holding the dark-mode choice (kept across pages and sign-outs)


def frame(title: str) -> None:
    """Header with navigation for the signed-in user's role, and the page title."""
    # Every page builds a fresh dark-mode element: it starts from the stored choice and stores each change.
    dark = ui.dark_mode(bool(app.storage.user.get(DARK, False)), on_change=_remember_dark)
    who = me()
    with ui.header().classes("items-center justify-between bg-slate-800"):
        with ui.row().classes("items-center gap-4").mark("navigation"):
            ui.label("Sluice").classes("text-lg font-bold")
            ui.link("Chat", "/chat").classes("text-white")
            for label, path, role in ADMIN_PAGES:
                if role_at_least(role):
                    ui.link(label, path).classes("text-white")
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{who.get('user', {}).get('email', '')} · {who.get('role', '')}").classes("text-sm")
            ui.button(icon="dark_mode", on_click=dark.toggle).props(
                "flat round color=white aria-label='Dark mode'"
            ).mark("dark-mode")
            ui.link("Account", "/account").classes("text-white")

            async def logout() -> None:
                await sign_out()
                ui.navigate.to("/login")

            ui.button("Sign out", on_click=logout).props("flat color=white")
    ui.label(title).classes("text-2xl font-semibold mt-2")


def _remember_dark(event: Any) -> None:
    app.storage.user[DARK] = bool(event.value)


def show_error(error: ApiError, fields: dict[str, Any] | None = None) -> None:
    """The gateway's message as a notification, and on the form field it names when there is one."""
    ui.notify(error.message, type="negative", multi_line=True)
    if fields and error.field and error.field in fields:
        set_field_error(fields[error.field], error.message)


def set_field_error(element: Any, message: str | None) -> None:
    """Show (or, with None, clear) a message under a form field."""
    if isinstance(element, ValidationElement):
        element.error = message
    elif message is None:
        element.props(remove="error error-message")
    else:
        element.props["error"] = True
        element.props["error-message"] = message


def clear_errors(fields: dict[str, Any]) -> None:
    for element in fields.values():
        set_field_error(element, None)


def transient_dialog() -> ui.dialog:
    """A dialog that is removed from the page once it has been closed and the next one opens, so that opening
    dialogs again and again does not pile up hidden elements. (Not removed on closing itself: the handler that
    closes it usually goes on to notify or navigate from inside it.)"""
    earlier: list[ui.dialog] = app.storage.client.setdefault("dialogs", [])
    for old in [d for d in earlier if not d.value]:
        earlier.remove(old)
        if not old.is_deleted:
            old.delete()
    created = ui.dialog()
    earlier.append(created)
    return created


def confirm(question: str, action: Callable[[], Awaitable[None]], label: str = "Confirm") -> None:
    """Ask before a destructive action."""
    with transient_dialog() as asking, ui.card().mark("confirm"):
        ui.label(question)
        with ui.row():
            ui.button("Cancel", on_click=asking.close).props("flat")

            async def go() -> None:
                asking.close()
                await action()

            ui.button(label, on_click=go).props("color=negative")
    asking.open()


async def attempt(action: Callable[[], Awaitable[Any]], fields: dict[str, Any] | None = None) -> Any:
    """Run an API action; show its error instead of raising. Returns the result, or None on failure."""
    if fields:
        clear_errors(fields)
    try:
        return await action()
    except ApiError as exc:
        show_error(exc, fields)
        return None


def table(rows: list[dict[str, Any]], columns: list[str], key: str = "id") -> ui.table:
    cols = [{"name": c, "label": c.replace("_", " "), "field": c, "align": "left", "sortable": True} for c in columns]
    return ui.table(columns=cols, rows=rows, row_key=key).classes("w-full").props("dense flat")


def csv_list(text: str | None) -> list[str]:
    """'a, b,,c' → ['a', 'b', 'c'] (model lists and networks typed into one field)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]
