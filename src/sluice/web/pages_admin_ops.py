"""Admin pages for operations: the overview (totals, charts, top spenders, live queues) and the queues.

Money is shown as money in the gateway's currency; users, keys and workspaces by name (see ``names.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.web.charts import filled, usage_charts
from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, frame, heading, table
from sluice.web.money import money
from sluice.web.names import load_directory
from sluice.web.session import require

OVERVIEW_SPANS = {"30 days, per day": ("day", 30 * 24), "48 hours, per hour": ("hour", 48)}
NOT_COUNTED = "Calls listing models or asking for a queue place are not counted; a stopped answer is not a failure."
TOP_KINDS = (("model", "models"), ("user", "users"), ("key", "keys"))


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def totals_cards(totals: dict[str, Any], currency: str, span: str) -> None:
    with ui.row().classes("gap-4"):
        for label, value in (
            (f"requests ({span})", f"{totals.get('requests', 0):,}"),
            ("failed", f"{totals.get('errors', 0):,}"),
            ("tokens", f"{totals.get('prompt_tokens', 0) + totals.get('completion_tokens', 0):,}"),
            ("cost", money(totals.get("cost", 0), currency)),
        ):
            with ui.card().classes("min-w-32"):
                ui.label(value).classes("text-2xl font-bold")
                ui.label(label).classes("text-sm text-gray-500")


async def overview_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Overview")
    frame(context, "Overview")
    names = await load_directory(client)
    totals = await attempt(lambda: client.admin("GET", "/usage")) or {}
    totals_cards(totals, context.currency, "30 days")
    ui.label(
        "Calls listing models or asking for a queue place are not counted; a stopped answer is not a failure."
    ).classes("text-xs text-gray-500")
    span = ui.toggle(list(OVERVIEW_SPANS), value="30 days, per day").mark("overview-span")
    chart = ui.column().classes("w-full")

    async def draw() -> None:
        granularity, hours = OVERVIEW_SPANS[str(span.value)]
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        if granularity == "day":
            end = datetime.combine(end.date() + timedelta(days=1), datetime.min.time(), UTC)
        start = end - timedelta(hours=hours)
        params = {"granularity": granularity, "start": _z(start), "end": _z(end)}
        series = await attempt(lambda: client.admin("GET", "/usage/series", params=params)) or []
        chart.clear()
        with chart:
            usage_charts(filled(series, granularity, start, end), context.currency, granularity)

    span.on_value_change(draw)
    await draw()
    with ui.row().classes("w-full gap-4"):
        for by, plural in TOP_KINDS:
            top = await attempt(_top(client, by)) or []
            rows = [
                {
                    "name": names.of(by, r["id"]),
                    "requests": r["requests"],
                    "tokens": r["prompt_tokens"] + r["completion_tokens"],
                    "cost": money(r["cost_nanos"] / 1e9, context.currency),
                }
                for r in top
            ]
            with ui.column().classes("grow"):
                heading(f"Top {plural} by cost", 2, "font-semibold text-base")
                table(rows, ["name", "requests", "tokens", "cost"], key="name").mark(f"top-{by}")
    heading("Live queues", 2, "text-xl mt-4")
    await queues_panel(client)


def _top(client: GatewayClient, by: str) -> Any:
    async def call() -> Any:
        return await client.admin("GET", "/usage/top", params={"by": by})

    return call


QUEUE_COLUMNS = ["deployment", "capacity", "in_flight", "waiting", "by_class", "oldest_wait_ms", "estimated_wait_ms"]


def queue_rows(snapshot: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per deployment, its waiting requests broken down by priority class ('standard 2, oldest 1.5 s')."""
    rows = []
    for deployment in (snapshot or {}).get("deployments", []):
        classes = []
        for cls in deployment.get("classes") or []:
            if cls.get("waiting"):
                oldest = cls.get("oldest_wait_ms")
                classes.append(
                    f"{cls['name']} {cls['waiting']}" + (f", oldest {oldest / 1000:.1f} s" if oldest else "")
                )
        row = {name: deployment.get(name) for name in QUEUE_COLUMNS}
        row["by_class"] = " · ".join(classes) or "—"
        rows.append(row)
    return rows


async def queues_panel(client: GatewayClient) -> None:
    """The live queues: one table whose rows are replaced every 2 s (the page is not rebuilt)."""
    empty = ui.label("No deployment with a capacity limit has seen traffic yet.").classes("text-gray-500")
    shown = table([], QUEUE_COLUMNS, key="deployment").mark("queues")

    async def refresh() -> None:
        snapshot = await attempt(lambda: client.admin("GET", "/queues"))
        if snapshot is None:
            return
        rows = queue_rows(snapshot)
        shown.rows = rows
        shown.update()
        empty.set_visibility(not rows)

    await refresh()
    ui.timer(2.0, refresh)


async def queues_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Queues")
    frame(context, "Queues (live, refreshed every 2 s)")
    await queues_panel(client)
