"""Admin page for people: users, a workspace's members and their roles, and workspaces.

Every list and action is the admin REST API's, called with the signed-in user's token: a workspace owner sees and
manages only their own workspace's members (never granting a role above theirs), gateway admins pick any
workspace, approve, disable and edit users (admin flag, priority class, password sign-in) and edit or disable
workspaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from sluice.identity.principal import PRIORITY_ORDER
from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import (
    attempt,
    clear_errors,
    confirm,
    csv_list,
    frame,
    heading,
    set_field_error,
    transient_dialog,
)
from sluice.web.session import me, require, role_at_least

WORKSPACE_ROLES = ["owner", "member", "viewer"]
NO_CLASS = "(none: the default)"

Refresh = Callable[[], Awaitable[None]]


async def users_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Users")
    frame(context, "Users")
    admin = role_at_least("admin")
    workspaces = await attempt(lambda: client.admin("GET", "/workspaces")) or []
    own = str(me().get("workspace_id") or "default")
    with ui.row().classes("items-end gap-4"):
        search = ui.input("Search by email").classes("w-80").mark("user-search")
        choices = {w["id"]: w["name"] for w in workspaces} or {own: own}
        workspace = (
            ui.select(choices, value=own if own in choices else next(iter(choices)), label="Workspace")
            .classes("w-72")
            .mark("workspace")
        )
        if not admin:
            workspace.disable()  # owners manage their own workspace only; the API would refuse any other
    heading("Members", 2, "text-xl mt-2")
    members_area = ui.column().classes("w-full").mark("members")
    heading("Users" if admin else "Users of this workspace", 2, "text-xl mt-4")
    users_area = ui.column().classes("w-full").mark("users")

    async def refresh() -> None:
        users = await attempt(lambda: client.admin("GET", "/users")) or []
        name = choices.get(str(workspace.value), str(workspace.value))
        await show_members(client, str(workspace.value), name, users, members_area, refresh)
        show_users(client, users, search.value or "", users_area, refresh)

    search.on_value_change(refresh)
    workspace.on_value_change(refresh)
    await refresh()
    if admin:
        create_user_form(client, choices, refresh)
        await workspaces_panel(client, workspaces)


async def show_members(
    client: GatewayClient,
    workspace_id: str,
    workspace_name: str,
    users: list[dict[str, Any]],
    area: ui.column,
    refresh: Refresh,
) -> None:
    members = await attempt(lambda: client.admin("GET", f"/workspaces/{workspace_id}/members"))
    area.clear()
    with area:
        if members is None:
            return
        if not members:
            ui.label("Nobody belongs to this workspace yet.").classes("text-gray-500")
        for member in members:
            with ui.row().classes("items-center gap-3 w-full border-b py-1").mark(f"member-{member['email']}"):
                ui.label(member["email"] or member["user_id"]).classes("w-72")
                role = ui.select(WORKSPACE_ROLES, value=member["role"], label="Role").classes("w-36").props("dense")
                fields = {"role": role}

                async def save(uid: str = member["user_id"], chosen: Any = role, f: Any = fields) -> None:
                    body = {"role": chosen.value}
                    path = f"/workspaces/{workspace_id}/members/{uid}"
                    if await attempt(lambda: client.admin("PUT", path, json=body), f) is not None:
                        ui.notify("Role saved.", type="positive")
                        await refresh()

                async def remove(uid: str = member["user_id"]) -> None:
                    path = f"/workspaces/{workspace_id}/members/{uid}"
                    if await attempt(lambda: client.admin("DELETE", path)) is not None:
                        await refresh()

                ui.button("Set role", on_click=save).props("dense flat")
                ui.button(
                    "Remove",
                    on_click=lambda r=remove, e=member["email"]: confirm(
                        f"Remove {e} from {workspace_name}?", r, "Remove"
                    ),
                ).props("dense flat color=negative")
        if role_at_least("admin"):
            outside = {u["id"]: u["email"] for u in users if u["id"] not in {m["user_id"] for m in members}}
            add_member_form(client, workspace_id, outside, refresh)


def add_member_form(client: GatewayClient, workspace_id: str, outside: dict[str, str], refresh: Refresh) -> None:
    """Admins add anyone to a workspace (owners only manage those who already belong, as the API rules)."""
    with ui.row().classes("items-end gap-3 mt-1"):
        user = ui.select(outside, label="Add a user", with_input=True).classes("w-72").mark("add-member")
        role = ui.select(WORKSPACE_ROLES, value="member", label="Role").classes("w-36")
        fields = {"user_id": user, "role": role}

        async def add() -> None:
            clear_errors(fields)
            if not user.value:
                set_field_error(user, "Pick the user to add.")
                return
            path = f"/workspaces/{workspace_id}/members/{user.value}"
            if await attempt(lambda: client.admin("PUT", path, json={"role": role.value}), fields) is not None:
                await refresh()

        ui.button("Add to workspace", on_click=add)


def show_users(
    client: GatewayClient, users: list[dict[str, Any]], needle: str, area: ui.column, refresh: Refresh
) -> None:
    area.clear()
    with area:
        for user in [u for u in users if needle.lower() in u["email"].lower()]:
            with ui.row().classes("items-center gap-3 w-full border-b py-1").mark(f"user-{user['email']}"):
                ui.label(user["email"]).classes("w-72")
                ui.badge(user["status"], color="orange" if user["status"] == "pending" else "green")
                if user["is_admin"]:
                    ui.badge("admin")
                if user["priority"]:
                    ui.badge(user["priority"], color="blue")
                if not user.get("password_login", True):
                    ui.badge("single sign-on only", color="grey")
                if role_at_least("admin"):
                    user_actions(client, user, refresh)


def user_actions(client: GatewayClient, user: dict[str, Any], refresh: Refresh) -> None:
    uid = user["id"]

    async def post(action: str) -> None:
        if await attempt(lambda: client.admin("POST", f"/users/{uid}/{action}")) is not None:
            ui.notify("Done.", type="positive")
            await refresh()

    ui.button("Edit", on_click=lambda: edit_user(client, user, refresh)).props("dense flat")
    ui.button("Reset password link", on_click=lambda: reset_link(client, user)).props("dense flat")
    if user["status"] == "pending":
        ui.button("Approve", on_click=lambda: post("approve")).props("dense color=positive")
    if user["status"] == "active":
        ui.button(
            "Disable", on_click=lambda: confirm(f"Disable {user['email']}?", lambda: post("disable"), "Disable")
        ).props("dense flat color=negative")
    if user["status"] == "disabled":
        ui.button("Enable", on_click=lambda: post("enable")).props("dense flat")


def edit_user(client: GatewayClient, user: dict[str, Any], refresh: Refresh) -> None:
    """The gateway-wide fields of a user: the admin flag, the priority class and password sign-in (admins only, as
    the API rules)."""
    with transient_dialog() as dialog, ui.card().classes("w-96").mark("edit-user"):
        ui.label(f"Edit {user['email']}").classes("font-semibold")
        is_admin = ui.checkbox("Gateway admin", value=bool(user["is_admin"]))
        priority = ui.select(
            [NO_CLASS, *PRIORITY_ORDER], value=user["priority"] or NO_CLASS, label="Priority class"
        ).classes("w-full")
        password_login = ui.checkbox("Password sign-in", value=bool(user.get("password_login", True)))
        fields = {"is_admin": is_admin, "priority": priority, "password_login": password_login}

        async def save() -> None:
            body = {
                "is_admin": is_admin.value,
                "priority": None if priority.value == NO_CLASS else priority.value,
                "password_login": password_login.value,
            }
            if await attempt(lambda: client.admin("PATCH", f"/users/{user['id']}", json=body), fields):
                dialog.close()
                await refresh()

        with ui.row():
            ui.button("Save", on_click=save)
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def create_user_form(client: GatewayClient, workspaces: dict[str, str], refresh: Refresh) -> None:
    """Admins create an account (email, workspace, role); the person sets a password through a one-time link."""
    heading("Create a user", 2, "text-xl mt-4")
    with ui.row().classes("items-start gap-3"):
        email = ui.input("Email").props("type=email").classes("w-72").mark("new-user-email")
        workspace = ui.select(workspaces, value=next(iter(workspaces), None), label="Workspace").classes("w-56")
        role = ui.select(WORKSPACE_ROLES, value="member", label="Role").classes("w-36")
    fields = {"email": email, "workspace_id": workspace, "role": role}
    shown = ui.column()

    async def create() -> None:
        body = {"email": (email.value or "").strip(), "workspace_id": workspace.value, "role": role.value}
        created = await attempt(lambda: client.admin("POST", "/users", json=body), fields)
        if not created:
            return
        email.set_value("")
        link = created["password_reset"]["ui_path"]
        shown.clear()
        with shown, ui.card().classes("bg-amber-50 dark:bg-amber-900").mark("new-user-link"):
            ui.label(
                f"Send this link to {created['user']['email']}: it sets their password (single use, shown once)."
            ).classes("font-semibold")
            ui.label(link).classes("font-mono text-sm").props("id=new-user-link")
            ui.button(
                "Copy link",
                icon="content_copy",
                on_click=lambda: ui.run_javascript(f"navigator.clipboard.writeText(window.location.origin + {link!r})"),
            ).props("dense aria-label='Copy link'")
        await refresh()  # the new user is listed at once

    ui.button("Create user", on_click=create).props("id=create-user")


async def reset_link(client: GatewayClient, user: dict[str, Any]) -> None:
    created = await attempt(lambda: client.admin("POST", f"/users/{user['id']}/password-reset"))
    if not created:
        return
    path = created["ui_path"]
    with transient_dialog() as dialog, ui.card():
        ui.label(f"Send this link to {user['email']} (single use, valid 24 h, shown once):")
        ui.label(path).classes("font-mono text-sm").props("id=reset-link")
        ui.button(
            "Copy link",
            icon="content_copy",
            on_click=lambda: ui.run_javascript(f"navigator.clipboard.writeText(window.location.origin + {path!r})"),
        ).props("aria-label='Copy link'")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


async def workspaces_panel(client: GatewayClient, workspaces: list[dict[str, Any]]) -> None:
    heading("Workspaces", 2, "text-xl mt-4")
    for ws in workspaces:
        with ui.row().classes("items-center gap-3 w-full border-b py-1").mark(f"workspace-{ws['id']}"):
            ui.label(ws["name"]).classes("w-48 font-medium")
            ui.badge("disabled" if ws["disabled"] else "active", color="red" if ws["disabled"] else "green")
            ui.label(ws["priority"] or "default class").classes("text-sm w-32")
            ui.label(", ".join(ws["allowed_models"]) if ws["allowed_models"] else "all models").classes("text-sm")
            ui.button("Edit", on_click=lambda w=ws: edit_workspace(client, w)).props("dense flat")
            if ws["disabled"]:
                ui.button("Enable", on_click=lambda w=ws: set_disabled(client, w, False)).props("dense flat")
            else:
                ui.button(
                    "Disable",
                    on_click=lambda w=ws: confirm(
                        f"Disable the workspace {w['name']}? Its keys and users stop working.",
                        lambda: set_disabled(client, w, True),
                        "Disable",
                    ),
                ).props("dense flat color=negative")
    with ui.row().classes("items-end"):
        name = ui.input("New workspace name").mark("new-workspace")

        async def create() -> None:
            if await attempt(lambda: client.admin("POST", "/workspaces", json={"name": name.value}), {"name": name}):
                ui.navigate.to("/admin/users")

        ui.button("Create workspace", on_click=create)


async def set_disabled(client: GatewayClient, ws: dict[str, Any], disabled: bool) -> None:
    if await attempt(lambda: client.admin("PATCH", f"/workspaces/{ws['id']}", json={"disabled": disabled})):
        ui.navigate.to("/admin/users")


def edit_workspace(client: GatewayClient, ws: dict[str, Any]) -> None:
    with transient_dialog() as dialog, ui.card().classes("w-96").mark("edit-workspace"):
        ui.label(f"Edit workspace {ws['name']}").classes("font-semibold")
        name = ui.input("Name", value=ws["name"]).classes("w-full")
        priority = ui.select(
            [NO_CLASS, *PRIORITY_ORDER], value=ws["priority"] or NO_CLASS, label="Priority class"
        ).classes("w-full")
        models = ui.input(
            "Allowed models (comma-separated, empty: all)", value=", ".join(ws["allowed_models"] or [])
        ).classes("w-full")
        fields = {"name": name, "priority": priority, "allowed_models": models}

        async def save() -> None:
            body = {
                "name": name.value,
                "priority": None if priority.value == NO_CLASS else priority.value,
                "allowed_models": csv_list(models.value) or None,
            }
            if await attempt(lambda: client.admin("PATCH", f"/workspaces/{ws['id']}", json=body), fields):
                dialog.close()
                ui.navigate.to("/admin/users")

        with ui.row():
            ui.button("Save", on_click=save)
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()
