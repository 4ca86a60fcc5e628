"""The frame every page shares: header, navigation by role, dark mode, and small helpers for forms and dialogs."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from nicegui import app, background_tasks, ui
from nicegui.elements.mixins.text_element import TextElement
from nicegui.elements.mixins.validation_element import ValidationElement

from sluice.web.client import ApiError
from sluice.web.context import UiContext
from sluice.web.session import gateway, me, role_at_least, sign_out

ADMIN_PAGES = [
    ("Overview", "/admin", "owner"),
    ("Users", "/admin/users", "owner"),
    ("API keys", "/admin/keys", "viewer"),
    ("Invitations", "/admin/invites", "owner"),
    ("IP rules", "/admin/ip-rules", "owner"),
    ("Usage", "/admin/usage", "viewer"),
    ("Requests", "/admin/requests", "viewer"),
    ("Limits", "/admin/limits", "owner"),
    ("Queues", "/admin/queues", "owner"),
    ("Models", "/admin/models", "admin"),
    ("Audit log", "/admin/audit", "owner"),
]
DARK = "dark"  # the user-storage entry holding the dark-mode choice (kept across pages and sign-outs)
STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/sluice-static"  # under the UI's mount path
MOUNT = "/ui"


@lru_cache(maxsize=8)
def static_url(name: str) -> str:
    """The browser's address of one of the UI's own static files, versioned by its content (cache-safe)."""
    version = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"{MOUNT}{STATIC_PATH}/{name}?v={version}"


def page_head() -> None:
    """What every page loads besides NiceGUI's own assets: the UI's style sheet."""
    ui.add_head_html(f'<link rel="stylesheet" href="{static_url("sluice.css")}">')


def heading(text: str, level: int = 1, classes: str = "") -> TextElement:
    """A real heading element (h1…h6), so screen readers and outlines find the page's structure."""
    return TextElement(tag=f"h{level}", text=text).classes(classes)


def frame(context: UiContext, title: str, menu: Callable[[], Any] | None = None, visible_title: bool = True) -> None:
    """Header with navigation for the signed-in user's role, and the page's heading.

    On a phone the header stays one line: the pages collapse into a menu, and ``menu`` (the chat's conversation
    drawer) gets a button of its own.
    """
    page_head()
    # Every page builds a fresh dark-mode element: it starts from the stored choice and stores each change.
    dark = ui.dark_mode(bool(app.storage.user.get(DARK, False)), on_change=_remember_dark)
    who = me()
    pages = [(label, path) for label, path, role in ADMIN_PAGES if role_at_least(role)]
    with ui.header().classes("items-center justify-between bg-slate-800 py-1 px-2 no-wrap"):
        with ui.row().classes("items-center gap-2 no-wrap").mark("navigation"):
            if menu is not None:
                ui.button(icon="menu", on_click=menu).props(
                    "flat round dense color=white aria-label='Conversations'"
                ).mark("drawer-toggle")
            ui.label("Sluice").classes("text-lg font-bold")
            with ui.element("nav").classes("flex max-lg:hidden items-center gap-3").props("aria-label=Pages"):
                ui.link("Chat", "/chat").classes("text-white")
                for label, path in pages:
                    link = ui.link(label, path).classes("text-white")
                    if path == "/admin/users" and role_at_least("admin"):
                        pending_badge(context, link)
            with (
                ui.button(icon="more_horiz")
                .props("flat round dense color=white aria-label='Pages'")
                .classes("lg:hidden")
                .mark("pages-menu"),
                ui.menu(),
            ):
                ui.menu_item("Chat", on_click=lambda: ui.navigate.to("/chat"))
                for label, path in pages:
                    ui.menu_item(label, on_click=lambda p=path: ui.navigate.to(p))
        with ui.row().classes("items-center gap-1 no-wrap"):
            ui.label(f"{who.get('user', {}).get('email', '')} · {who.get('role', '')}").classes("text-sm max-md:hidden")
            ui.button(icon="dark_mode", on_click=dark.toggle).props(
                "flat round dense color=white aria-label='Dark mode'"
            ).mark("dark-mode")
            ui.button(icon="account_circle", on_click=lambda: ui.navigate.to("/account")).props(
                "flat round dense color=white aria-label='Account'"
            )

            async def logout() -> None:
                url = ui.context.client.request.url
                end_session = await sign_out(context, f"{url.scheme}://{url.netloc}/ui/login")
                ui.navigate.to(end_session or "/login")  # a single sign-on user also leaves the provider

            ui.button("Sign out", on_click=logout).props("flat dense no-caps color=white")
    heading(title, 1, "text-2xl font-semibold mt-1" if visible_title else "sr-only")


def _remember_dark(event: Any) -> None:
    app.storage.user[DARK] = bool(event.value)


def pending_badge(context: UiContext, link: ui.link) -> None:
    """The number of sign-ups waiting for approval, beside the Users link (filled once the page is up)."""
    with link:
        badge = ui.badge("", color="orange").props("rounded aria-label='sign-ups waiting'").classes("ml-1")
    badge.set_visibility(False)

    async def fill() -> None:
        client = gateway(context)
        if client is None:
            return
        try:
            waiting = await client.admin("GET", "/users", params={"status": "pending"})
        except ApiError:
            return
        badge.set_text(str(len(waiting)))
        badge.props(f"aria-label='{len(waiting)} sign-ups waiting for approval'")
        badge.set_visibility(bool(waiting))

    # A task, not a timer: a timer waits for the browser's connection, which makes NiceGUI send the page before
    # the page function has finished building it.
    background_tasks.create(fill(), name="sluice-ui-pending-badge")


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
