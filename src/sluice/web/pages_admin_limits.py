"""Admin page for limits and budgets: a key's, user's or workspace's limits and spend, and the role defaults.

Keys, users and workspaces are picked by name (a user by email, a key by name and prefix), typed to filter.

The page shows the limits admission applies and where they come from (stored here, the configuration, a role's
default, the scope type's default, or none), as ``GET /admin/v1/limits/…`` resolves them; admins store new ones
or clear the stored ones, after which the next source applies again.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sluice.config import LIMIT_ROLES
from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, frame, heading
from sluice.web.money import money
from sluice.web.names import load_directory
from sluice.web.session import require, role_at_least

FIELDS = ("rpm", "tpm", "concurrent", "budget")
FIELD_LABELS = {
    "rpm": "Requests per minute",
    "tpm": "Tokens per minute",
    "concurrent": "Concurrent requests",
    "budget": "Budget (money per period)",
}
SCOPES = ("key", "user", "workspace", "role")
LABELS = {"key": "Key", "user": "User (email)", "workspace": "Workspace"}


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


async def limits_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Limits and budgets")
    frame(context, "Limits and budgets")
    names = await load_directory(client)
    choices = {"key": names.keys, "user": names.users, "workspace": names.workspaces}
    with ui.row().classes("items-end gap-3"):
        scope = ui.select(list(SCOPES), value="key", label="Scope").classes("w-36").mark("limits-scope")
        # picked by name (a user by email, a key by name and prefix), typed to filter
        ident = ui.select(choices["key"], label="Key", with_input=True).classes("w-80").mark("limits-id")
        role = ui.select(list(LIMIT_ROLES), value="member", label="Role").classes("w-36").mark("limits-role")
        ui.button("Load", on_click=lambda: load())
    area = ui.column()

    def follow_scope() -> None:
        ident.set_options(choices.get(str(scope.value), {}), value=None)
        ident.props["label"] = LABELS.get(str(scope.value), "Id")
        ident.update()
        ident.set_visibility(scope.value != "role")
        role.set_visibility(scope.value == "role")

    def path() -> str:
        return f"/limits/roles/{role.value}" if scope.value == "role" else f"/limits/{scope.value}/{ident.value}"

    async def load() -> None:
        if scope.value != "role" and not ident.value:
            area.clear()
            return
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
                    else f"The {scope.value} {names.of(str(scope.value), str(ident.value))}"
                )
                heading(what, 2, "text-lg").mark("limits-of")
                _show(client, limits, spend, path(), load, context.currency)

    scope.on_value_change(follow_scope)
    ident.on_value_change(load)
    role.on_value_change(load)
    follow_scope()


def _show(
    client: GatewayClient,
    limits: dict[str, Any],
    spend: dict[str, Any] | None,
    path: str,
    reload: Any,
    currency: str,
) -> None:
    ui.label(source_text(limits)).mark("limits-source")
    if spend:
        ui.label(spend_text(spend, currency)).mark("limits-spend")
    inputs = {name: ui.number(FIELD_LABELS[name], value=limits.get(name)).mark(f"limit-{name}") for name in FIELDS}
    period = ui.select(["day", "week", "month"], value=limits.get("period", "month"), label="Budget period").classes(
        "w-40"
    )
    if not role_at_least("admin"):
        for field in inputs.values():
            field.disable()
        period.disable()
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


def spend_text(spend: dict[str, Any], currency: str) -> str:
    """'Spent $1.20 this month of $5 ($3.80 left)'."""
    budget = spend.get("budget")
    text = f"Spent {money(spend['spent'], currency)} this {spend['period']}"
    if budget is not None:
        text += f" of {money(budget, currency)} ({money(spend['remaining'], currency)} left)"
    return text
