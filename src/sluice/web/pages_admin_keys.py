"""Admin page for API keys: create (the secret shown once), list with last use and spend, edit, networks, revoke.

A key's spend is its cost over the last 30 days, from one usage-series call grouped by key (the roll-up, so the
page costs one cheap query however many keys are listed); its budget and the current period's spend are on the
Limits page. The networks a key may be used from are its key-scoped IP rules, managed here by owners and admins
(the IP-rule API is theirs; members set networks when they create a key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.identity.principal import PRIORITY_ORDER
from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, confirm, csv_list, frame, heading, set_field_error, transient_dialog
from sluice.web.money import money
from sluice.web.session import require, role_at_least
from sluice.web.validation import cidr_problem, cidrs_problem, date_problem

SPEND_DAYS = 30


async def keys_page(context: UiContext) -> None:
    client = require(context, "viewer")
    if client is None:
        return
    ui.page_title("Sluice · API keys")
    frame(context, "API keys")
    listing = ui.column().classes("w-full").mark("keys")

    async def show_keys() -> None:
        keys = await attempt(lambda: client.admin("GET", "/keys")) or []
        spend = await key_spend(client)
        listing.clear()
        with listing:
            if not keys:
                ui.label("No keys yet.").classes("text-gray-500")
            for key in keys:
                key_row(client, key, spend.get(key["id"], 0.0), context.currency)

    await show_keys()
    if role_at_least("member"):
        key_form(client, show_keys)


def key_row(client: GatewayClient, key: dict[str, Any], spent: float, currency: str) -> None:
    with ui.row().classes("items-center gap-3 w-full border-b py-1").mark(f"key-{key['name']}"):
        ui.label(key["name"]).classes("w-48 font-medium")
        ui.label(f"{key['prefix']}…").classes("font-mono")
        ui.label(f"{key['role']} · {key['priority']}").classes("w-40")
        ui.label(", ".join(key["allowed_models"]) if key["allowed_models"] else "all models").classes("w-48")
        ui.label(f"last used {key['last_used_at'] or 'never'}").classes("text-sm")
        ui.label(f"expires {key['expires_at'] or 'never'}").classes("text-sm")
        ui.label(f"spent {money(spent, currency)} in {SPEND_DAYS} days").classes("text-sm").mark("spend")
        if role_at_least("member"):
            ui.button("Edit", on_click=lambda k=key: edit_key(client, k)).props("dense flat")

            async def revoke(key_id: str = key["id"]) -> None:
                if await attempt(lambda: client.admin("DELETE", f"/keys/{key_id}")) is not None:
                    ui.navigate.to("/admin/keys")

            ui.button(
                "Revoke",
                on_click=lambda r=revoke, n=key["name"]: confirm(f"Revoke the key '{n}'?", r, "Revoke"),
            ).props("dense flat color=negative")


async def key_spend(client: GatewayClient) -> dict[str, float]:
    """Cost per key id over the last SPEND_DAYS whole UTC days (today included)."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    params = {
        "granularity": "day",
        "group_by": "key",
        "start": f"{tomorrow - timedelta(days=SPEND_DAYS)}T00:00:00Z",
        "end": f"{tomorrow}T00:00:00Z",
    }
    rows = await attempt(lambda: client.admin("GET", "/usage/series", params=params)) or []
    spend: dict[str, float] = {}
    for row in rows:
        if row["group"]:
            spend[row["group"]] = spend.get(row["group"], 0.0) + row["cost_nanos"] / 1e9
    return spend


def expiry_value(text: str | None) -> str | None:
    """'2027-01-31' → the API's timestamp (midnight UTC); empty → None (never expires). Anything else goes to the
    API as typed, whose refusal then names the field."""
    if not text or not text.strip():
        return None
    try:
        return f"{date.fromisoformat(text.strip()).isoformat()}T00:00:00Z"
    except ValueError:
        return text.strip()


async def edit_key(client: GatewayClient, key: dict[str, Any]) -> None:
    """Rename a key or change its models, priority class, expiry and networks (within your own grants)."""
    with transient_dialog() as dialog, ui.card().classes("w-[32rem]").mark("edit-key"):
        ui.label(f"Edit key {key['prefix']}…").classes("font-semibold")
        name = ui.input("Name", value=key["name"]).classes("w-full")
        models = ui.input(
            "Allowed models (comma-separated, empty: all)", value=", ".join(key["allowed_models"] or [])
        ).classes("w-full")
        priority = ui.select(list(PRIORITY_ORDER), value=key["priority"], label="Priority class").classes("w-full")
        expires = ui.input(
            "Expires (YYYY-MM-DD, empty: never)", value=(key["expires_at"] or "")[:10], validation=date_problem
        ).classes("w-full")
        fields = {"name": name, "allowed_models": models, "priority": priority, "expires_at": expires}

        async def save() -> None:
            body: dict[str, Any] = {
                "name": name.value,
                "allowed_models": csv_list(models.value) or None,
                "priority": priority.value,
                "expires_at": expiry_value(expires.value),
            }
            if await attempt(lambda: client.admin("PATCH", f"/keys/{key['id']}", json=body), fields):
                dialog.close()
                ui.navigate.to("/admin/keys")

        with ui.row():
            ui.button("Save", on_click=save)
            ui.button("Cancel", on_click=dialog.close).props("flat")
        ui.separator()
        networks = ui.column().classes("w-full")
    dialog.open()
    if role_at_least("owner"):
        await key_networks(client, key, networks)
    else:
        with networks:
            ui.label("The networks this key may be used from are changed by a workspace owner.").classes("text-sm")


async def key_networks(client: GatewayClient, key: dict[str, Any], area: ui.column) -> None:
    """The key's IP rules: listed, removed (with confirmation) and added, each a key-scoped rule."""
    rules = await attempt(lambda: client.admin("GET", "/ip-rules"))
    area.clear()
    if rules is None:
        return
    with area:
        ui.label("Allowed networks (empty: anywhere the workspace allows)").classes("font-semibold")
        for rule in [r for r in rules if r["key_id"] == key["id"]]:
            with ui.row().classes("items-center gap-2").mark(f"network-{rule['cidr']}"):
                ui.label(rule["cidr"]).classes("font-mono w-48")

                async def remove(rule_id: str = rule["id"]) -> None:
                    if await attempt(lambda: client.admin("DELETE", f"/ip-rules/{rule_id}")) is not None:
                        await key_networks(client, key, area)

                ui.button(
                    "Remove", on_click=lambda r=remove, c=rule["cidr"]: confirm(f"Stop accepting {c}?", r, "Remove")
                ).props("dense flat color=negative")
        with ui.row().classes("items-end gap-2"):
            cidr = ui.input("Network (CIDR)", validation=cidr_problem).classes("w-48").mark("key-network")

            async def add() -> None:
                if not cidr.value:
                    set_field_error(cidr, "Enter a network such as 10.0.0.0/8.")
                    return
                body = {"cidr": cidr.value.strip(), "scope": "key", "key_id": key["id"]}
                if await attempt(lambda: client.admin("POST", "/ip-rules", json=body), {"cidr": cidr}):
                    await key_networks(client, key, area)

            ui.button("Add network", on_click=add)


def key_form(client: GatewayClient, refresh: Callable[[], Awaitable[None]]) -> None:
    heading("Create a key", 2, "text-xl mt-4")
    with ui.row().classes("items-start gap-4"):
        name = ui.input("Name").props("id=key-name")
        models = ui.input("Allowed models (comma-separated, empty: all)")
        priority = ui.select(list(PRIORITY_ORDER), value=None, label="Priority class").classes("w-40")
        expires = ui.input("Expires (YYYY-MM-DD, optional)", validation=date_problem)
        networks = ui.input("Allowed networks (CIDRs, comma-separated)", validation=cidrs_problem)
    fields = {"name": name, "allowed_models": models, "priority": priority, "expires_at": expires, "ip_allow": networks}
    shown = ui.column()

    async def create() -> None:
        body: dict[str, Any] = {"name": name.value}
        if models.value:
            body["allowed_models"] = csv_list(models.value)
        if priority.value:
            body["priority"] = priority.value
        if expires.value:
            body["expires_at"] = expiry_value(expires.value)
        if networks.value:
            body["ip_allow"] = csv_list(networks.value)
        created = await attempt(lambda: client.admin("POST", "/keys", json=body), fields)
        if not created:
            return
        shown.clear()
        with shown, ui.card().classes("bg-amber-50 dark:bg-amber-900"):
            ui.label("Copy this key now: it is not shown again.").classes("font-semibold")
            secret = ui.label(created["key"]).classes("font-mono").props("id=new-key")
            ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(secret.text)).props(
                "dense aria-label=Copy"
            )
        await refresh()  # the new key is listed at once (its secret only in the box above)

    ui.button("Create key", on_click=create).props("id=create-key")
