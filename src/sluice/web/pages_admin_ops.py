"""Admin pages for operations: overview, usage (with CSV export), queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.web.client import ADMIN, GatewayClient, error_of
from sluice.web.layout import attempt, frame, show_error, table
from sluice.web.session import require, role_at_least


def series_chart(rows: list[dict[str, Any]], title: str) -> None:
    """Requests, tokens, cost and error rate, with p50/p95 latency on their own axis (ms)."""
    days = [r["bucket"] for r in rows]
    errors = [round(100 * r["errors"] / r["requests"], 2) if r["requests"] else 0 for r in rows]
    ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "legend": {"bottom": 0},
            "grid": {"right": 110},
            "xAxis": {"type": "category", "data": days},
            "yAxis": [
                {"type": "value"},
                {"type": "value", "name": "%"},
                {"type": "value", "name": "ms", "offset": 50},
            ],
            "series": [
                {"name": "requests", "type": "bar", "data": [r["requests"] for r in rows]},
                {"name": "tokens", "type": "line", "data": [r["prompt_tokens"] + r["completion_tokens"] for r in rows]},
                {"name": "cost", "type": "line", "data": [r["cost_nanos"] / 1e9 for r in rows]},
                {"name": "error rate", "type": "line", "yAxisIndex": 1, "data": errors},
                {"name": "p50 latency", "type": "line", "yAxisIndex": 2, "data": latency_points(rows, "p50")},
                {"name": "p95 latency", "type": "line", "yAxisIndex": 2, "data": latency_points(rows, "p95")},
            ],
        }
    ).classes("w-full h-80")


OVERVIEW_SPANS = {"30 days, per day": ("day", 30 * 24), "48 hours, per hour": ("hour", 48)}


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def latency_points(rows: list[dict[str, Any]], which: str) -> list[float | None]:
    """One latency per bucket; None (a gap in the line) where a bucket had no successful request."""
    return [r.get(f"latency_{which}_ms") for r in rows]


async def overview_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · Overview")
    frame("Overview")
    totals = await attempt(lambda: client.admin("GET", "/usage")) or {}
    with ui.row().classes("gap-4"):
        for label, value in (
            ("requests (30 days)", totals.get("requests", 0)),
            ("errors", totals.get("errors", 0)),
            ("tokens", totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0)),
            ("cost", f"{totals.get('cost', 0):.4f}"),
        ):
            with ui.card():
                ui.label(str(value)).classes("text-2xl font-bold")
                ui.label(label).classes("text-sm text-gray-500")
    span = ui.toggle(list(OVERVIEW_SPANS), value="30 days, per day").mark("overview-span")
    chart = ui.column().classes("w-full")

    async def draw() -> None:
        granularity, hours = OVERVIEW_SPANS[str(span.value)]
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        params = {"granularity": granularity, "start": _z(end - timedelta(hours=hours)), "end": _z(end)}
        series = await attempt(lambda: client.admin("GET", "/usage/series", params=params)) or []
        chart.clear()
        with chart:
            series_chart(series, f"Requests, tokens, cost, error rate and p50/p95 latency per {granularity}")

    span.on_value_change(draw)
    await draw()
    with ui.row().classes("w-full gap-4"):
        for by in ("model", "user", "key"):
            top = await attempt(_top(client, by)) or []
            with ui.column().classes("grow"):
                ui.label(f"Top {by}s by cost").classes("font-semibold")
                table(top, ["id", "requests", "prompt_tokens", "completion_tokens", "cost_nanos"])
    ui.label("Live queues").classes("text-xl mt-4")
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


async def queues_page() -> None:
    client = require("owner")
    if client is None:
        return
    ui.page_title("Sluice · Queues")
    frame("Queues (live, refreshed every 2 s)")
    await queues_panel(client)


async def usage_page() -> None:
    client = require("viewer")
    if client is None:
        return
    ui.page_title("Sluice · Usage")
    frame("Usage")
    today = datetime.now(UTC).date()
    with ui.row().classes("items-end gap-3"):
        start = ui.input("From (YYYY-MM-DD)", value=str(today - timedelta(days=29)))
        end = ui.input("To (YYYY-MM-DD)", value=str(today))
        workspace = ui.input("Workspace id") if role_at_least("admin") else None
        user = ui.input("User id")
        key = ui.input("Key id")
        model = ui.input("Model")
        group = ui.select(["model", "key", "user", "workspace"], value="model", label="Group by").classes("w-36")
    area = ui.column().classes("w-full")

    def params() -> dict[str, str]:
        out = {"start": f"{start.value}T00:00:00Z", "end": f"{_next_day(end.value)}T00:00:00Z"}
        for name, element in (("workspace_id", workspace), ("user_id", user), ("key_id", key), ("model", model)):
            if element is not None and element.value:
                out[name] = element.value.strip()
        return out

    async def show() -> None:
        totals = await attempt(lambda: client.admin("GET", "/usage", params=params()))
        daily = {**params(), "granularity": "day"}
        overall = await attempt(lambda: client.admin("GET", "/usage/series", params=daily))
        rows = await attempt(lambda: client.admin("GET", "/usage/series", params={**daily, "group_by": group.value}))
        area.clear()
        if totals is None or rows is None or overall is None:
            return
        with area:
            ui.label(
                f"{totals['requests']} requests, {totals['errors']} errors, "
                f"{totals['prompt_tokens'] + totals['completion_tokens']} tokens, cost {totals['cost']:.6f}"
            ).props("id=usage-totals")
            series_chart(overall, "Per day")
            for row in rows:
                row["row"] = f"{row['bucket']}/{row['group']}"
            columns = ["bucket", "group", "requests", "errors", "prompt_tokens", "completion_tokens", "cost_nanos"]
            table(rows, [*columns, "latency_p50_ms", "latency_p95_ms"], key="row").mark("usage-table")

    async def export() -> None:
        response = await client.request("GET", f"{ADMIN}/usage/export.csv", params=params())
        if response.status_code != 200:
            show_error(error_of(response))
            return
        ui.download(response.content, "usage.csv", "text/csv")

    with ui.row():
        ui.button("Show", on_click=show).props("id=usage-show")
        ui.button("Export CSV", icon="download", on_click=export).props("flat")
    await show()


def _next_day(value: str | None) -> str:
    try:
        return str(datetime.strptime((value or "").strip(), "%Y-%m-%d").date() + timedelta(days=1))
    except ValueError:
        return str(datetime.now(UTC).date() + timedelta(days=1))
