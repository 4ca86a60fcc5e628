"""Admin pages for people and access: users and memberships, API keys, invitations, IP rules.

Every list and action is the admin REST API's, called with the signed-in user's token, so a workspace owner sees
and changes only their own workspace, exactly as the API allows.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sluice.web.client import GatewayClient
from sluice.web.layout import attempt, confirm, frame
from sluice.web.session import me, require, role_at_least

PRIORITIES = ["interactive", "standard", "batch"]


def table(rows: list[dict[str, Any]], columns: list[str], key: str = "id") -> ui.table:
    cols = [{"name": c, "label": c.replace("_", " "), "field": c, "align": "left", "sortable": True} for c in columns]
    return ui.table(columns=cols, rows=rows, row_key=key).classes("w-full").props("dense flat")


@ui.page("/admin/users")
async def users_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · Users")
    frame("Users")
    search = ui.input("Search by email").classes("w-80")
    area = ui.column().classes("w-full")

    async def refresh() -> None:
        users = await attempt(lambda: client.admin("GET", "/users")) or []
        needle = (search.value or "").lower()
        area.clear()
        with area:
            for user in [u for u in users if needle in u["email"].lower()]:
                with ui.row().classes("items-center gap-3 w-full border-b py-1"):
                    ui.label(user["email"]).classes("w-72")
                    ui.badge(user["status"], color="orange" if user["status"] == "pending" else "green")
                    if user["is_admin"]:
                        ui.badge("admin")
                    if role_at_least("admin"):
                        user_actions(client, user, refresh)
                    member_editor(client, user, refresh)

    search.on_value_change(refresh)
    await refresh()
    if role_at_least("admin"):
        await workspaces_panel(client)


def user_actions(client: GatewayClient, user: dict[str, Any], refresh: Any) -> None:
    uid = user["id"]

    async def reset_link() -> None:
        created = await attempt(lambda: client.admin("POST", f"/users/{uid}/password-reset"))
        if not created:
            return
        path = created["ui_path"]
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Send this link to {user['email']} (single use, valid 24 h, shown once):")
            ui.label(path).classes("font-mono text-sm").props("id=reset-link")
            ui.button(
                "Copy link",
                icon="content_copy",
                on_click=lambda: ui.run_javascript(f"navigator.clipboard.writeText(window.location.origin + {path!r})"),
            )
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    ui.button("Reset password link", on_click=reset_link).props("dense flat")
    if user["status"] == "pending":
        ui.button("Approve", on_click=lambda: _then(client.admin("POST", f"/users/{uid}/approve"), refresh)).props(
            "dense color=positive"
        )
    if user["status"] == "active":

        async def disable() -> None:
            await _then(client.admin("POST", f"/users/{uid}/disable"), refresh)

        ui.button("Disable", on_click=lambda: confirm(f"Disable {user['email']}?", disable, "Disable")).props(
            "dense flat color=negative"
        )
    if user["status"] == "disabled":
        ui.button("Enable", on_click=lambda: _then(client.admin("POST", f"/users/{uid}/enable"), refresh)).props(
            "dense flat"
        )


def member_editor(client: GatewayClient, user: dict[str, Any], refresh: Any) -> None:
    workspace = me().get("workspace_id") or "default"
    role = ui.select(["owner", "member", "viewer"], label=f"role in {workspace}").classes("w-40").props("dense")

    async def save() -> None:
        if role.value:
            body = {"role": role.value}
            await _then(client.admin("PUT", f"/workspaces/{workspace}/members/{user['id']}", json=body), refresh)

    ui.button("Set role", on_click=save).props("dense flat")


async def _then(call: Any, refresh: Any) -> None:
    async def run() -> Any:
        return await call

    if await attempt(run) is not None:
        ui.notify("Done.", type="positive")
        await refresh()


async def workspaces_panel(client: GatewayClient) -> None:
    ui.label("Workspaces").classes("text-xl mt-4")
    rows = await attempt(lambda: client.admin("GET", "/workspaces")) or []
    table(rows, ["id", "name", "disabled", "priority", "created_at"])
    with ui.row().classes("items-end"):
        name = ui.input("New workspace name")

        async def create() -> None:
            if await attempt(lambda: client.admin("POST", "/workspaces", json={"name": name.value}), {"name": name}):
                ui.navigate.to("/admin/users")

        ui.button("Create workspace", on_click=create)


@ui.page("/admin/keys")
async def keys_page() -> None:
    client = require("viewer")
    if client is None:
        return
    ui.page_title("Sluice · API keys")
    frame("API keys")
    keys = await attempt(lambda: client.admin("GET", "/keys")) or []
    with ui.column().classes("w-full"):
        for key in keys:
            with ui.row().classes("items-center gap-3 w-full border-b py-1"):
                ui.label(key["name"]).classes("w-48 font-medium")
                ui.label(f"{key['prefix']}…").classes("font-mono")
                ui.label(f"{key['role']} · {key['priority']}").classes("w-40")
                ui.label(", ".join(key["allowed_models"]) if key["allowed_models"] else "all models").classes("w-48")
                ui.label(f"last used {key['last_used_at'] or 'never'}").classes("text-sm")
                ui.label(f"expires {key['expires_at'] or 'never'}").classes("text-sm")
                if role_at_least("member"):
                    ui.button("Edit", on_click=lambda k=key: edit_key(client, k)).props("dense flat")

                    async def revoke(key_id: str = key["id"]) -> None:
                        if await attempt(lambda: client.admin("DELETE", f"/keys/{key_id}")) is not None:
                            ui.navigate.to("/admin/keys")

                    ui.button(
                        "Revoke",
                        on_click=lambda r=revoke, n=key["name"]: confirm(f"Revoke the key '{n}'?", r, "Revoke"),
                    ).props("dense flat color=negative")
    if role_at_least("member"):
        key_form(client)


def edit_key(client: GatewayClient, key: dict[str, Any]) -> None:
    """Rename a key or change its models, priority class or expiry (within your own grants)."""
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(f"Edit key {key['prefix']}…").classes("font-semibold")
        name = ui.input("Name", value=key["name"]).classes("w-full")
        models = ui.input(
            "Allowed models (comma-separated, empty: all)", value=", ".join(key["allowed_models"] or [])
        ).classes("w-full")
        priority = ui.select(PRIORITIES, value=key["priority"], label="Priority class").classes("w-full")
        expires = ui.input("Expires (YYYY-MM-DD, empty: never)", value=(key["expires_at"] or "")[:10]).classes("w-full")
        fields = {"name": name, "allowed_models": models, "priority": priority, "expires_at": expires}

        async def save() -> None:
            listed = [m.strip() for m in (models.value or "").split(",") if m.strip()]
            body: dict[str, Any] = {
                "name": name.value,
                "allowed_models": listed or None,
                "priority": priority.value,
                "expires_at": f"{expires.value.strip()}T00:00:00Z" if expires.value else None,
            }
            if await attempt(lambda: client.admin("PATCH", f"/keys/{key['id']}", json=body), fields):
                dialog.close()
                ui.navigate.to("/admin/keys")

        with ui.row():
            ui.button("Save", on_click=save)
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def key_form(client: GatewayClient) -> None:
    ui.label("Create a key").classes("text-xl mt-4")
    with ui.row().classes("items-start gap-4"):
        name = ui.input("Name").props("id=key-name")
        models = ui.input("Allowed models (comma-separated, empty: all)")
        priority = ui.select(PRIORITIES, value=None, label="Priority class").classes("w-40")
        expires = ui.input("Expires (YYYY-MM-DD, optional)")
        networks = ui.input("Allowed networks (CIDRs, comma-separated)")
    fields = {"name": name, "allowed_models": models, "priority": priority, "expires_at": expires, "ip_allow": networks}
    shown = ui.column()

    async def create() -> None:
        body: dict[str, Any] = {"name": name.value}
        if models.value:
            body["allowed_models"] = [m.strip() for m in models.value.split(",") if m.strip()]
        if priority.value:
            body["priority"] = priority.value
        if expires.value:
            body["expires_at"] = f"{expires.value.strip()}T00:00:00Z"
        if networks.value:
            body["ip_allow"] = [n.strip() for n in networks.value.split(",") if n.strip()]
        created = await attempt(lambda: client.admin("POST", "/keys", json=body), fields)
        if not created:
            return
        shown.clear()
        with shown, ui.card().classes("bg-amber-50 dark:bg-amber-900"):
            ui.label("Copy this key now: it is not shown again.").classes("font-semibold")
            secret = ui.label(created["key"]).classes("font-mono").props("id=new-key")
            ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(secret.text)).props("dense")

    ui.button("Create key", on_click=create).props("id=create-key")


@ui.page("/admin/invites")
async def invites_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · Invitations")
    frame("Invitations")
    if role_at_least("admin"):
        settings = await attempt(lambda: client.admin("GET", "/settings")) or {}
        mode = ui.select(
            ["closed", "invite", "approval"], value=settings.get("registration"), label="Registration mode"
        ).classes("w-48")

        async def save_mode() -> None:
            if await attempt(lambda: client.admin("PUT", "/settings", json={"registration": mode.value})):
                ui.notify("Registration mode saved.", type="positive")

        ui.button("Save mode", on_click=save_mode)
    invites = await attempt(lambda: client.admin("GET", "/invites")) or []
    for invite in invites:
        status = "used" if invite["used_at"] else "revoked" if invite["revoked_at"] else "open"
        with ui.row().classes("items-center gap-3 border-b py-1"):
            ui.label(f"{invite['workspace_id'] or 'default'} · {invite['role']}").classes("w-48")
            ui.label(f"expires {invite['expires_at']}").classes("text-sm w-64")
            ui.badge(status)
            ui.label(invite["note"])
            if status == "open":

                async def revoke(invite_id: str = invite["id"]) -> None:
                    if await attempt(lambda: client.admin("DELETE", f"/invites/{invite_id}")) is not None:
                        ui.navigate.to("/admin/invites")

                ui.button("Revoke", on_click=lambda r=revoke: confirm("Revoke this invitation?", r, "Revoke")).props(
                    "dense flat color=negative"
                )
    ui.label("Invite someone").classes("text-xl mt-4")
    with ui.row().classes("items-start gap-4"):
        workspace = ui.input("Workspace id (admins; empty: yours)") if role_at_least("admin") else None
        role = ui.select(["member", "viewer", "owner"], value="member", label="Role").classes("w-32")
        hours = ui.number("Valid for (hours)", value=72, min=1, max=8760)
        note = ui.input("Note")
    result = ui.column()

    async def create() -> None:
        body: dict[str, Any] = {"role": role.value, "expires_in_hours": hours.value, "note": note.value or ""}
        if workspace is not None and workspace.value:
            body["workspace_id"] = workspace.value
        created = await attempt(lambda: client.admin("POST", "/invites", json=body), {"role": role, "note": note})
        if created:
            result.clear()
            with result, ui.card():
                ui.label("Send this token to the person you invite (shown once):")
                token = ui.label(created["token"]).classes("font-mono").props("id=invite-token")
                ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(token.text)).props("dense")

    ui.button("Create invitation", on_click=create).props("id=create-invite")


@ui.page("/admin/ip-rules")
async def ip_rules_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · IP rules")
    frame("IP rules")
    rules = await attempt(lambda: client.admin("GET", "/ip-rules")) or []
    for rule in rules:
        with ui.row().classes("items-center gap-3 border-b py-1"):
            ui.label(rule["cidr"]).classes("font-mono w-48")
            ui.label(rule["scope"] + (" · anonymous" if rule["anonymous"] else "")).classes("w-48")
            ui.label(rule["workspace_id"] or rule["key_id"] or "").classes("w-48")
            ui.label(rule["note"])

            async def remove(rule_id: str = rule["id"]) -> None:
                if await attempt(lambda: client.admin("DELETE", f"/ip-rules/{rule_id}")) is not None:
                    ui.navigate.to("/admin/ip-rules")

            ui.button("Remove", on_click=lambda r=remove: confirm("Remove this rule?", r, "Remove")).props(
                "dense flat color=negative"
            )
    ui.label("Add a rule").classes("text-xl mt-4")
    scopes = ["global", "workspace", "key"] if role_at_least("admin") else ["workspace", "key"]
    with ui.row().classes("items-start gap-4"):
        cidr = ui.input("Network (CIDR)", validation={"Enter a network such as 10.0.0.0/8": _looks_like_cidr})
        scope = ui.select(scopes, value=scopes[0], label="Scope").classes("w-36")
        key_id = ui.input("Key id (scope key)")
        anonymous = ui.checkbox("Admit callers without keys") if role_at_least("admin") else None
        priority = ui.select(PRIORITIES, value=None, label="Priority (anonymous)").classes("w-40")
        note = ui.input("Note")

    async def add() -> None:
        body: dict[str, Any] = {"cidr": cidr.value or "", "scope": scope.value, "note": note.value or ""}
        if key_id.value:
            body["key_id"] = key_id.value
        if anonymous is not None and anonymous.value:
            body["anonymous"] = True
        if priority.value:
            body["priority"] = priority.value
        if await attempt(lambda: client.admin("POST", "/ip-rules", json=body), {"cidr": cidr, "key_id": key_id}):
            ui.navigate.to("/admin/ip-rules")

    ui.button("Add rule", on_click=add)
    ui.label(
        "Trusted proxies (whose X-Forwarded-For is believed) are set in the configuration: server.trusted_proxies."
    ).classes("text-sm text-gray-500 mt-2")


def _looks_like_cidr(value: str | None) -> bool:
    import ipaddress

    if not value:
        return True
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return True
