"""The usage page: what the reader's own limits leave them, then usage and cost over a range (totals, charts, a
table per day and model, key, user or workspace) with CSV export.

Users, keys and workspaces are picked and shown by name; money as money in the gateway's currency. What the
reader sees is what the usage API lets their role see (members: their own usage).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.web.charts import filled, usage_charts
from sluice.web.client import ADMIN, GatewayClient, error_of
from sluice.web.context import UiContext
from sluice.web.layout import attempt, frame, heading, show_error, table
from sluice.web.money import money
from sluice.web.names import Directory, load_directory
from sluice.web.session import require, role_at_least
from sluice.web.validation import date_problem

ANY = "(any)"


def name_pickers(names: Directory) -> dict[str, ui.select]:
    """Workspace (admins), user (owners) and key pickers by name, typed to filter."""
    pickers: dict[str, ui.select] = {}
    if role_at_least("admin"):
        pickers["workspace_id"] = ui.select({ANY: ANY, **names.workspaces}, value=ANY, label="Workspace")
    if role_at_least("owner"):
        users = {ANY: ANY, **dict(sorted(names.users.items(), key=lambda item: item[1]))}
        pickers["user_id"] = ui.select(users, value=ANY, label="User", with_input=True).mark("usage-user")
    if names.keys:
        pickers["key_id"] = ui.select({ANY: ANY, **names.keys}, value=ANY, label="Key", with_input=True)
    for picker in pickers.values():
        picker.classes("w-56")
    return pickers


async def usage_page(context: UiContext) -> None:
    client = require(context, "viewer")
    if client is None:
        return
    ui.page_title("Sluice · Usage")
    frame(context, "Usage")
    await own_limits_panel(client, context.currency)
    names = await load_directory(client)
    today = datetime.now(UTC).date()
    with ui.row().classes("items-end gap-3"):
        start = ui.input("From (YYYY-MM-DD)", value=str(today - timedelta(days=29)), validation=date_problem)
        end = ui.input("To (YYYY-MM-DD)", value=str(today), validation=date_problem)
        pickers = name_pickers(names)
        model = ui.input("Model")
        group = ui.select(["model", "key", "user", "workspace"], value="model", label="Group by").classes("w-36")
    area = ui.column().classes("w-full")

    def params() -> dict[str, str]:
        out = {"start": f"{start.value}T00:00:00Z", "end": f"{_next_day(end.value)}T00:00:00Z"}
        for name, picker in pickers.items():
            if picker.value and picker.value != ANY:
                out[name] = str(picker.value)
        if model.value:
            out["model"] = model.value.strip()
        return out

    async def show() -> None:
        query = params()
        totals = await attempt(lambda: client.admin("GET", "/usage", params=query))
        daily = {**query, "granularity": "day"}
        overall = await attempt(lambda: client.admin("GET", "/usage/series", params=daily))
        rows = await attempt(lambda: client.admin("GET", "/usage/series", params={**daily, "group_by": group.value}))
        area.clear()
        if totals is None or rows is None or overall is None:
            return
        begin = datetime.fromisoformat(query["start"].replace("Z", "+00:00"))
        finish = datetime.fromisoformat(query["end"].replace("Z", "+00:00"))
        with area:
            ui.label(
                f"{totals['requests']:,} requests, {totals['errors']:,} failed, "
                f"{totals['prompt_tokens'] + totals['completion_tokens']:,} tokens, "
                f"cost {money(totals['cost'], context.currency)}"
            ).props("id=usage-totals")
            usage_charts(filled(overall, "day", begin, finish), context.currency, "day")
            table(
                [
                    {
                        "row": f"{r['bucket']}/{r['group']}",
                        "day": r["bucket"],
                        str(group.value): names.of(str(group.value), r["group"]),
                        "requests": r["requests"],
                        "failed": r["errors"],
                        "tokens_in": r["prompt_tokens"],
                        "tokens_out": r["completion_tokens"],
                        "cost": money(r["cost_nanos"] / 1e9, context.currency),
                        "p50_ms": r["latency_p50_ms"],
                        "p95_ms": r["latency_p95_ms"],
                    }
                    for r in rows
                ],
                ["day", str(group.value), "requests", "failed", "tokens_in", "tokens_out", "cost", "p50_ms", "p95_ms"],
                key="row",
            ).mark("usage-table")

    async def export() -> None:
        response = await client.request("GET", f"{ADMIN}/usage/export.csv", params=params())
        if response.status_code != 200:
            show_error(error_of(response))
            return
        ui.download(response.content, "usage.csv", "text/csv")

    with ui.row():
        ui.button("Show", on_click=show).props("id=usage-show")
        ui.button("Export CSV", icon="download", on_click=export).props("flat aria-label='Export CSV'")
    await show()


async def own_limits_panel(client: GatewayClient, currency: str) -> None:
    """What limits the signed-in user: their user's and workspace's budgets and rates, and what is left."""
    standing = await attempt(lambda: client.admin("GET", "/me/limits"))
    if standing is None:
        return
    heading("Your limits", 2, "text-xl mt-2")
    with ui.row().classes("gap-4").mark("own-limits"):
        for scope in standing["scopes"]:
            with ui.card().classes("min-w-64").mark(f"own-limits-{scope['scope']}"):
                ui.label(f"{scope['scope'].capitalize()}: {scope['name'] or scope['id']}").classes("font-semibold")
                for line in own_limit_lines(scope, standing.get("currency") or currency):
                    ui.label(line).classes("text-sm")


def own_limit_lines(scope: dict[str, Any], currency: str) -> list[str]:
    lines = []
    if scope["budget"] is not None:
        left = money(scope["remaining"], currency) if scope["remaining"] is not None else "unknown right now"
        lines.append(f"Budget {money(scope['budget'], currency)} per {scope['period']}: {left} left")
        if scope["spent"] is not None:
            lines.append(f"Spent this {scope['period']}: {money(scope['spent'], currency)}")
    elif scope["spent"] is not None:
        lines.append(f"No budget; spent this {scope['period']}: {money(scope['spent'], currency)}")
    rates = [
        f"{scope[name]:,} {label}"
        for name, label in (("rpm", "requests/min"), ("tpm", "tokens/min"), ("concurrent", "at once"))
        if scope[name] is not None
    ]
    lines.append("Rate limits: " + (", ".join(rates) if rates else "none"))
    return lines


def _next_day(value: str | None) -> str:
    try:
        return str(datetime.strptime((value or "").strip(), "%Y-%m-%d").date() + timedelta(days=1))
    except ValueError:
        return str(datetime.now(UTC).date() + timedelta(days=1))
