"""Admin page for limits and budgets: a key's, user's or workspace's limits and spend, and the role defaults.

The page shows the limits admission applies and where they come from (stored here, the configuration, a role's
default, the scope type's default, or none), as ``GET /admin/v1/limits/…`` resolves them; admins store new ones
or clear the stored ones, after which the next source applies again.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sluice.config import LIMIT_ROLES
from sluice.web.client import GatewayClient
from sluice.web.layout import attempt, frame
from sluice.web.session import require, role_at_least

FIELDS = ("rpm", "tpm", "concurrent", "budget")
SCOPES = ("key", "user", "workspace", "role")


def source_text(limits: dict[str, Any]) -> str:
    """Where the shown limits come from, in words."""
    source = limits.get("source")
    if source == "stored":
        return "Stored here (set on this page, the admin API or `sluice limits`)."
    if source == "config":
        return "From the configuration (limits in sluice.yaml)."
    if source == "role":
        return f"The default of the role '{limits.get('role')}' (no limits of its own)."
    if source == "default":
        return "The default for every scope of this type (limits.defaults)."
    return "No limits apply."


def limits_body(inputs: dict[str, Any], period: str) -> dict[str, Any]:
    """The PUT body from the form: empty fields are no limit."""
    body: dict[str, Any] = {
        name: (float(field.value) if name == "budget" else int(field.value))
        for name, field in inputs.items()
        if field.value not in (None, "")
    }
    body["period"] = period
    return body


async def limits_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · Limits and budgets")
    frame("Limits and budgets")
    with ui.row().classes("items-end gap-3"):
        scope = ui.select(list(SCOPES), value="key", label="Scope").classes("w-36").mark("limits-scope")
        ident = ui.input("Id").mark("limits-id")
        role = ui.select(list(LIMIT_ROLES), value="member", label="Role").classes("w-36").mark("limits-role")
    ident.bind_visibility_from(scope, "value", backward=lambda v: v != "role")
    role.bind_visibility_from(scope, "value", backward=lambda v: v == "role")
    area = ui.column()

    def path() -> str:
        return f"/limits/roles/{role.value}" if scope.value == "role" else f"/limits/{scope.value}/{ident.value}"

    async def load() -> None:
        limits = await attempt(lambda: client.admin("GET", path()), {"id": ident})
        spend = None
        if limits is not None and scope.value != "role":  # a role has no spend of its own
            spend = await attempt(lambda: client.admin("GET", f"{path()}/spend"))
        area.clear()
        if limits is not None:
            with area:
                what = (
                    f"The default of the role {role.value}"
                    if scope.value == "role"
                    else f"The {scope.value} {ident.value}"
                )
                ui.label(what).classes("text-lg").mark("limits-of")
                _show(client, limits, spend, path(), load)

    ui.button("Load", on_click=load)


def _show(client: GatewayClient, limits: dict[str, Any], spend: dict[str, Any] | None, path: str, reload: Any) -> None:
    ui.label(source_text(limits)).mark("limits-source")
    if spend:
        budget = spend["budget"]
        ui.label(
            f"Spent {spend['spent']:.6f} this {spend['period']}"
            + (f" of {budget:g} ({spend['remaining']:.6f} left)" if budget is not None else "")
        )
    inputs = {name: ui.number(name, value=limits.get(name)).mark(f"limit-{name}") for name in FIELDS}
    period = ui.select(["day", "week", "month"], value=limits.get("period", "month"), label="period")
    if not role_at_least("admin"):
        return

    async def save() -> None:
        body = limits_body(inputs, period.value)
        if await attempt(lambda: client.admin("PUT", path, json=body), inputs):
            ui.notify("Limits saved.", type="positive")
            await reload()

    async def clear() -> None:
        if await attempt(lambda: client.admin("DELETE", path)) is not None:
            ui.notify("Stored limits cleared: the next source applies.", type="positive")
            await reload()

    with ui.row():
        ui.button("Save limits", on_click=save)
        if limits.get("source") == "stored":
            ui.button("Clear stored limits", on_click=clear).props("flat")
