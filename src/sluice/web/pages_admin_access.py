"""Admin pages for access: invitations (and the registration mode) and IP rules.

Every list and action is the admin REST API's, called with the signed-in user's token, so a workspace owner sees
and changes only their own workspace, exactly as the API allows. Invitations are single use: the API has no
"uses" count, so each one admits exactly one person.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from sluice.identity.principal import PRIORITY_ORDER
from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, clear_errors, confirm, frame, heading, set_field_error
from sluice.web.names import load_directory
from sluice.web.session import me, require, role_at_least
from sluice.web.validation import cidr_problem, cidrs_problem

INVITE_ROLES = ["member", "viewer", "owner"]


async def workspace_choices(client: GatewayClient) -> dict[str, str]:
    """Workspace id → label, for admins' workspace pickers (owners have exactly one: their own)."""
    rows = await attempt(lambda: client.admin("GET", "/workspaces")) or []
    return {w["id"]: w["name"] for w in rows}


async def invites_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Invitations")
    frame(context, "Invitations")
    if role_at_least("admin"):
        await registration_mode_form(client)
    workspaces = await workspace_choices(client)
    listing = ui.column().classes("w-full").mark("invites")

    async def show_invites() -> None:
        invites = await attempt(lambda: client.admin("GET", "/invites")) or []
        listing.clear()
        with listing:
            if not invites:
                ui.label("No invitations yet.").classes("text-gray-500")
            for invite in invites:
                invite_row(client, invite, workspaces)

    await show_invites()
    await invite_form(client, show_invites)


async def registration_mode_form(client: GatewayClient) -> None:
    settings = await attempt(lambda: client.admin("GET", "/settings")) or {}
    mode = ui.select(
        ["closed", "invite", "approval"], value=settings.get("registration"), label="Registration mode"
    ).classes("w-48")

    async def save_mode() -> None:
        if await attempt(lambda: client.admin("PUT", "/settings", json={"registration": mode.value})):
            ui.notify("Registration mode saved.", type="positive")

    ui.button("Save mode", on_click=save_mode)


def invite_row(client: GatewayClient, invite: dict[str, Any], workspaces: dict[str, str]) -> None:
    status = "used" if invite["used_at"] else "revoked" if invite["revoked_at"] else "open"
    with ui.row().classes("items-center gap-3 border-b py-1").mark(f"invite-{invite['id']}"):
        where = invite["workspace_id"] or "default"
        ui.label(f"{workspaces.get(where, where)} · {invite['role']}").classes("w-48")
        ui.label(f"expires {invite['expires_at']}").classes("text-sm w-64")
        ui.badge(status)
        ui.label(invite["note"])
        if status == "open":

            async def revoke() -> None:
                if await attempt(lambda: client.admin("DELETE", f"/invites/{invite['id']}")) is not None:
                    ui.navigate.to("/admin/invites")

            ui.button("Revoke", on_click=lambda: confirm("Revoke this invitation?", revoke, "Revoke")).props(
                "dense flat color=negative"
            )


async def invite_form(client: GatewayClient, refresh: Callable[[], Awaitable[None]]) -> None:
    admin = role_at_least("admin")
    heading("Invite someone", 2, "text-xl mt-4")
    ui.label("An invitation admits one person: it is used up by the first account created with it.").classes(
        "text-sm text-gray-500"
    )
    own = str(me().get("workspace_id") or "default")
    with ui.row().classes("items-start gap-4"):
        choices = await workspace_choices(client) if admin else {own: own}
        workspace = ui.select(choices, value=own if own in choices else None, label="Workspace").classes("w-64")
        if not admin:
            workspace.disable()
        role = ui.select(INVITE_ROLES, value="member", label="Role").classes("w-32")
        hours = ui.number("Valid for (hours)", value=72, min=1, max=8760)
        note = ui.input("Note")
    result = ui.column()
    fields = {"workspace_id": workspace, "role": role, "expires_in_hours": hours, "note": note}

    async def create() -> None:
        body: dict[str, Any] = {"role": role.value, "expires_in_hours": hours.value, "note": note.value or ""}
        if admin and workspace.value:
            body["workspace_id"] = workspace.value
        created = await attempt(lambda: client.admin("POST", "/invites", json=body), fields)
        if created:
            result.clear()
            with result, ui.card():
                ui.label("Send this token to the person you invite (shown once):")
                token = ui.label(created["token"]).classes("font-mono").props("id=invite-token")
                ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(token.text)).props(
                    "dense aria-label=Copy"
                )
            await refresh()  # the new invitation is listed at once (its token only in the box above)

    ui.button("Create invitation", on_click=create).props("id=create-invite")


async def ip_rules_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · IP rules")
    frame(context, "IP rules")
    admin = role_at_least("admin")
    rules = await attempt(lambda: client.admin("GET", "/ip-rules")) or []
    names = await load_directory(client)
    for rule in rules:
        with ui.row().classes("items-center gap-3 border-b py-1").mark(f"rule-{rule['cidr']}"):
            ui.label(rule["cidr"]).classes("font-mono w-48")
            ui.label(rule["scope"] + (" · anonymous" if rule["anonymous"] else "")).classes("w-48")
            owner = (
                f"key {names.key(rule['key_id'])}"
                if rule["key_id"]
                else f"workspace {names.workspace(rule['workspace_id'])}"
                if rule["workspace_id"]
                else ""
            )
            ui.label(owner).classes("w-64")
            ui.label(rule["note"])

            async def remove(rule_id: str = rule["id"]) -> None:
                if await attempt(lambda: client.admin("DELETE", f"/ip-rules/{rule_id}")) is not None:
                    ui.navigate.to("/admin/ip-rules")

            ui.button("Remove", on_click=lambda r=remove: confirm("Remove this rule?", r, "Remove")).props(
                "dense flat color=negative"
            )
    await rule_form(client, admin)
    if admin:
        await trusted_proxies_form(client)


async def trusted_proxies_form(client: GatewayClient) -> None:
    """The proxies whose ``X-Forwarded-For`` is believed: a run-time setting, else the configuration's list."""
    settings = await attempt(lambda: client.admin("GET", "/settings")) or {}
    heading("Trusted proxies", 2, "text-xl mt-4")
    source = "set here" if settings.get("trusted_proxies_stored") else "from the configuration (server.trusted_proxies)"
    ui.label(f"Networks whose X-Forwarded-For is believed; {source}. Every replica picks up a change.").classes(
        "text-sm text-gray-500"
    )
    proxies = (
        ui.input(
            "Networks (comma-separated)", value=", ".join(settings.get("trusted_proxies", [])), validation=cidrs_problem
        )
        .classes("w-96")
        .mark("trusted-proxies")
    )

    async def save(networks: list[str] | None) -> None:
        body = {"trusted_proxies": networks}
        if await attempt(lambda: client.admin("PUT", "/settings", json=body), {"trusted_proxies": proxies}):
            ui.notify("Trusted proxies saved.", type="positive")
            ui.navigate.to("/admin/ip-rules")

    async def save_entered() -> None:
        if proxies.validate():
            await save([part.strip() for part in (proxies.value or "").split(",") if part.strip()])

    with ui.row():
        ui.button("Save proxies", on_click=save_entered)
        ui.button("Use the configuration's list", on_click=lambda: save(None)).props("flat")


async def rule_form(client: GatewayClient, admin: bool) -> None:
    heading("Add a rule", 2, "text-xl mt-4")
    own = str(me().get("workspace_id") or "default")
    workspaces = await workspace_choices(client) if admin else {own: own}
    keys = await attempt(lambda: client.admin("GET", "/keys")) or []
    scopes = ["global", "workspace", "key"] if admin else ["workspace", "key"]
    with ui.row().classes("items-start gap-4"):
        cidr = ui.input("Network (CIDR)", validation=cidr_problem).mark("rule-cidr")
        scope = ui.select(scopes, value=scopes[0], label="Scope").classes("w-36").mark("rule-scope")
        workspace = (
            ui.select(workspaces, value=own if own in workspaces else None, label="Workspace")
            .classes("w-64")
            .mark("rule-workspace")
        )
        if not admin:
            workspace.disable()
        key = (
            ui.select({k["id"]: f"{k['name']} ({k['prefix']}…)" for k in keys}, label="Key", with_input=True)
            .classes("w-64")
            .mark("rule-key")
        )
        anonymous = ui.checkbox("Admit callers without keys") if admin else None
        priority = ui.select(list(PRIORITY_ORDER), value=None, label="Priority (anonymous)").classes("w-40")
        note = ui.input("Note")

    def follow_scope() -> None:
        """Only the fields the chosen scope uses are shown."""
        workspace.set_visibility(scope.value == "workspace" or bool(anonymous and anonymous.value))
        key.set_visibility(scope.value == "key")

    scope.on_value_change(follow_scope)
    if anonymous is not None:
        anonymous.on_value_change(follow_scope)
    follow_scope()
    fields = {"cidr": cidr, "scope": scope, "workspace_id": workspace, "key_id": key, "note": note}

    async def add() -> None:
        clear_errors(fields)
        if not cidr.value:
            set_field_error(cidr, "Enter a network such as 10.0.0.0/8.")
            return
        if scope.value == "key" and not key.value:
            set_field_error(key, "Pick the key this rule confines.")
            return
        body: dict[str, Any] = {"cidr": cidr.value.strip(), "scope": scope.value, "note": note.value or ""}
        if scope.value == "key":
            body["key_id"] = key.value
        elif admin and workspace.value and (scope.value == "workspace" or (anonymous and anonymous.value)):
            body["workspace_id"] = workspace.value
        if anonymous is not None and anonymous.value:
            body["anonymous"] = True
        if priority.value:
            body["priority"] = priority.value
        if await attempt(lambda: client.admin("POST", "/ip-rules", json=body), fields):
            ui.navigate.to("/admin/ip-rules")

    ui.button("Add rule", on_click=add)
