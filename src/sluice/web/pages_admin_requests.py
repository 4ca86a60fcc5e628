"""The request log: recent calls (time, user, key, model, deployment, status, tokens, cost, latency, time to first
token, queue wait) with filters, a page at a time, and each call in detail.

Everything comes from ``GET /admin/v1/requests``, scoped by the API as for usage: admins see every workspace,
owners theirs, members and viewers their own calls. The gateway stores no prompt or answer, so none is shown.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, frame, heading, transient_dialog
from sluice.web.money import money
from sluice.web.names import Directory, load_directory
from sluice.web.session import require, role_at_least
from sluice.web.validation import date_problem

PAGE = 50
ANY = "(any)"
OUTCOMES = {ANY: ANY, "ok": "succeeded", "error": "failed", "cancelled": "stopped by the client"}
COLUMNS = [
    ("time", "Time (UTC)"),
    ("user", "User"),
    ("key", "Key"),
    ("model", "Model"),
    ("deployment", "Deployment"),
    ("status", "Status"),
    ("tokens", "Tokens in / out"),
    ("cost", "Cost"),
    ("latency", "Latency"),
    ("ttft", "First token"),
    ("queue", "Queue wait"),
    ("details", ""),
]
DETAILS_SLOT = (
    '<q-td :props="props"><q-btn flat dense no-caps label="Details" '
    ":aria-label=\"'Details of the call at ' + props.row.time\" "
    "@click=\"$parent.$emit('details', props.row)\" /></q-td>"
)


def when(moment: str) -> str:
    """'2026-12-04T17:20:31.123456Z' → 'Dec 4, 17:20:31' (UTC)."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return f"{parsed:%b} {parsed.day}, {parsed:%H:%M:%S}"


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def status_text(entry: dict[str, Any]) -> str:
    status = int(entry["status"])
    if status == 499:
        return "499 stopped"
    return f"{status} {entry['error_type']}" if entry.get("error_type") else str(status)


def row_of(entry: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        "id": entry["id"],
        "time": when(entry["created_at"]),
        "user": entry.get("user_email") or entry.get("user_id") or "—",
        "key": f"{entry['key_name']} ({entry['key_prefix']}…)" if entry.get("key_name") else (entry["key_id"] or "—"),
        "model": entry.get("model") or "—",
        "deployment": entry.get("deployment") or "—",
        "status": status_text(entry),
        "tokens": f"{entry['prompt_tokens']} / {entry['completion_tokens']}"
        + (" (est.)" if entry["estimated"] else ""),
        "cost": money(entry["cost"], currency),
        "latency": duration(entry["latency_ms"]),
        "ttft": duration(entry.get("ttft_ms")),
        "queue": duration(entry["queue_wait_ms"]),
    }


def filter_params(values: dict[str, Any], before: str | None) -> dict[str, str]:
    """The API's query for the filter fields as chosen (days are whole UTC days; ``to`` includes its day)."""
    params = {"limit": str(PAGE)}
    if values.get("start") and date_problem(values["start"]) is None:
        params["start"] = f"{date.fromisoformat(values['start'].strip())}T00:00:00Z"
    if values.get("end") and date_problem(values["end"]) is None:
        params["end"] = f"{date.fromisoformat(values['end'].strip()) + timedelta(days=1)}T00:00:00Z"
    for name in ("user_id", "key_id", "workspace_id", "outcome"):
        if values.get(name) and values[name] != ANY:
            params[name] = str(values[name])
    for name in ("model", "deployment"):
        if values.get(name) and str(values[name]).strip():
            params[name] = str(values[name]).strip()
    if before:
        params["before"] = before
    return params


async def requests_page(context: UiContext) -> None:
    client = require(context, "viewer")
    if client is None:
        return
    ui.page_title("Sluice · Requests")
    frame(context, "Requests")
    ui.label("Recent calls, newest first. Prompts and answers are never stored, so they are not shown.").classes(
        "text-sm text-gray-500"
    )
    names = await load_directory(client)
    fields, filters = filter_fields(names)
    pages: list[str | None] = [None]  # the cursor of each page shown so far (the last one is on screen)
    table = (
        ui.table(
            columns=[{"name": n, "label": label, "field": n, "align": "left"} for n, label in COLUMNS],
            rows=[],
            row_key="id",
        )
        .classes("w-full")
        .props("dense flat wrap-cells")
        .mark("requests")
    )
    table.add_slot("body-cell-details", DETAILS_SLOT)
    table.on("details", lambda event: show_details(client, str(event.args["id"]), context.currency))
    empty = ui.label("No calls match.").classes("text-gray-500")
    with ui.row():
        newer = ui.button("Newer", on_click=lambda: turn(-1)).props("flat no-caps")
        older = ui.button("Older", on_click=lambda: turn(1)).props("flat no-caps")
    following: dict[str, str | None] = {"next": None}

    async def show() -> None:
        values = {name: element.value for name, element in fields.items()}
        found = await attempt(lambda: client.admin("GET", "/requests", params=filter_params(values, pages[-1])))
        if found is None:
            return
        table.rows = [row_of(e, context.currency) for e in found["data"]]
        table.update()
        empty.set_visibility(not found["data"])
        following["next"] = found["next_before"]
        newer.set_enabled(len(pages) > 1)
        older.set_enabled(found["next_before"] is not None)

    async def turn(step: int) -> None:
        if step > 0 and following["next"]:
            pages.append(following["next"])
        elif step < 0 and len(pages) > 1:
            pages.pop()
        await show()

    async def restart() -> None:
        del pages[1:]
        await show()

    with filters:
        ui.button("Filter", on_click=restart).props("id=requests-filter")
    await show()


def filter_fields(names: Directory) -> tuple[dict[str, Any], ui.row]:
    fields: dict[str, Any] = {}
    with ui.row().classes("items-end gap-3") as row:
        fields["start"] = ui.input("From (YYYY-MM-DD)", validation=date_problem).classes("w-36")
        fields["end"] = ui.input("To (YYYY-MM-DD)", validation=date_problem).classes("w-36")
        if role_at_least("admin"):
            workspaces = {ANY: ANY, **names.workspaces}
            fields["workspace_id"] = ui.select(workspaces, value=ANY, label="Workspace").classes("w-48")
        if role_at_least("owner"):
            users = {ANY: ANY, **dict(sorted(names.users.items(), key=lambda item: item[1]))}
            fields["user_id"] = (
                ui.select(users, value=ANY, label="User", with_input=True).classes("w-56").mark("requests-user")
            )
        if names.keys:
            keys = {ANY: ANY, **names.keys}
            fields["key_id"] = ui.select(keys, value=ANY, label="Key", with_input=True).classes("w-56")
        fields["model"] = ui.input("Model").classes("w-36")
        fields["deployment"] = ui.input("Deployment").classes("w-44")
        fields["outcome"] = ui.select(OUTCOMES, value=ANY, label="Outcome").classes("w-44").mark("requests-outcome")
    return fields, row


async def show_details(client: GatewayClient, record_id: str, currency: str) -> None:
    entry = await attempt(lambda: client.admin("GET", f"/requests/{record_id}"))
    if entry is None:
        return
    facts = [
        ("Request id", entry["request_id"]),
        ("Arrived", entry["created_at"]),
        ("Finished", entry["finished_at"]),
        ("User", entry.get("user_email") or entry.get("user_id") or "—"),
        ("Key", f"{entry['key_name']} ({entry['key_prefix']}…)" if entry.get("key_name") else entry["key_id"] or "—"),
        ("Workspace", entry.get("workspace_name") or entry.get("workspace_id") or "—"),
        ("API", f"{entry['surface']} · {entry['endpoint']}" + (" · streamed" if entry["stream"] else "")),
        ("Model", entry.get("model") or "—"),
        ("Deployment", f"{entry.get('deployment') or '—'} (upstream model {entry.get('upstream_model') or '—'})"),
        ("Status", status_text(entry)),
        ("Tokens", f"{entry['prompt_tokens']} in, {entry['completion_tokens']} out, {entry['cached_tokens']} cached"),
        ("Tokens estimated", "yes (the upstream reported none)" if entry["estimated"] else "no"),
        ("Cost", money(entry["cost"], currency)),
        ("Answered from the cache", "yes" if entry["cache_hit"] else "no"),
        ("Latency", duration(entry["latency_ms"])),
        ("Time to first token", duration(entry.get("ttft_ms"))),
        ("Queue wait", duration(entry["queue_wait_ms"])),
        ("Gateway overhead", duration(entry.get("overhead_ms"))),
    ]
    with transient_dialog() as dialog, ui.card().classes("w-[36rem] max-w-full").mark("request-detail"):
        heading("Call details", 2, "text-lg font-semibold")
        with ui.grid(columns=2).classes("gap-x-4 gap-y-1 text-sm"):
            for label, value in facts:
                ui.label(label).classes("text-gray-500")
                ui.label(str(value)).classes("break-all")
        ui.label("Prompts and answers are not stored by the gateway.").classes("text-xs text-gray-500")
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()
