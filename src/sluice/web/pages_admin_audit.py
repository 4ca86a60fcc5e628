"""Admin page for the audit log: filters (time range, action, actor, target, workspace for admins), pages of events
newest first, and each event's before/after images on demand.

The images are already stripped of secrets when they are written (``sluice.identity.audit.scrub``); the page
applies the same rule again at every depth before showing one, so a secret nested inside an image can never
reach the browser even if some writer forgot it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from nicegui import ui

from sluice.identity.audit import scrub
from sluice.web.context import UiContext
from sluice.web.layout import attempt, frame
from sluice.web.names import Directory, load_directory
from sluice.web.pages_admin_access import workspace_choices
from sluice.web.session import require, role_at_least
from sluice.web.validation import date_problem

PAGE = 50
ALL = "(every workspace)"


def scrub_deep(value: Any) -> Any:
    """``scrub`` applied to every mapping inside ``value``."""
    if isinstance(value, dict):
        return {k: scrub_deep(v) for k, v in (scrub(value) or {}).items()}
    if isinstance(value, list):
        return [scrub_deep(v) for v in value]
    return value


def image_text(image: dict[str, Any] | None) -> str:
    return "—" if image is None else json.dumps(scrub_deep(image), indent=2, sort_keys=True, default=str)


@dataclass
class Pager:
    """Where the reader is: the ``before_id`` of every page shown so far (the last one is on screen)."""

    starts: list[int | None] = field(default_factory=lambda: [None])
    oldest_shown: int | None = None

    def older(self) -> None:
        if self.oldest_shown is not None:
            self.starts.append(self.oldest_shown)

    def newer(self) -> None:
        if len(self.starts) > 1:
            self.starts.pop()

    def restart(self) -> None:
        del self.starts[1:]


def audit_params(values: dict[str, str | None], before_id: int | None) -> dict[str, str]:
    """The API's query for the filter fields as typed (days are whole UTC days; ``until`` includes its day)."""
    params: dict[str, str] = {"limit": str(PAGE)}
    for name in ("action", "actor", "target_type", "target_id"):
        if values.get(name):
            params[name] = str(values[name]).strip()
    if values.get("workspace_id") and values["workspace_id"] != ALL:
        params["workspace_id"] = str(values["workspace_id"])
    if values.get("since") and date_problem(values["since"]) is None:
        params["since"] = f"{date.fromisoformat(str(values['since']).strip())}T00:00:00Z"
    if values.get("until") and date_problem(values["until"]) is None:
        params["until"] = f"{date.fromisoformat(str(values['until']).strip()) + timedelta(days=1)}T00:00:00Z"
    if before_id is not None:
        params["before_id"] = str(before_id)
    return params


async def audit_page(context: UiContext) -> None:
    client = require(context, "owner")
    if client is None:
        return
    ui.page_title("Sluice · Audit log")
    frame(context, "Audit log")
    pager = Pager()
    names = await load_directory(client)
    with ui.row().classes("items-end gap-3"):
        since = ui.input("From (YYYY-MM-DD)", validation=date_problem).classes("w-40")
        until = ui.input("To (YYYY-MM-DD)", validation=date_problem).classes("w-40")
        action = ui.input("Action (e.g. key.create)").classes("w-48").mark("audit-action")
        actor = ui.input("Actor (e.g. user:<id>)").classes("w-48").mark("audit-actor")
        target_type = ui.input("Target type (e.g. key)").classes("w-40").mark("audit-target-type")
        target_id = ui.input("Target id").classes("w-48").mark("audit-target-id")
        workspace = None
        if role_at_least("admin"):
            choices = {ALL: ALL, **(await workspace_choices(client))}
            workspace = ui.select(choices, value=ALL, label="Workspace").classes("w-64").mark("audit-workspace")
        ui.button("Filter", on_click=lambda: turn(pager.restart)).props("id=audit-filter")
    fields: dict[str, ui.input | ui.select] = {
        "since": since,
        "until": until,
        "action": action,
        "actor": actor,
        "target_type": target_type,
        "target_id": target_id,
    }
    if workspace is not None:
        fields["workspace_id"] = workspace
    area = ui.column().classes("w-full").mark("audit-events")

    async def show() -> None:
        values = {name: element.value for name, element in fields.items()}
        events = await attempt(
            lambda: client.admin("GET", "/audit", params=audit_params(values, pager.starts[-1])), fields
        )
        area.clear()
        if events is None:
            return
        pager.oldest_shown = int(events[-1]["id"]) if events else None
        with area:
            if not events:
                ui.label("No events match.").classes("text-gray-500")
            for event in events:
                event_row(event, names)
            with ui.row():
                newer = ui.button("Newer", icon="chevron_left", on_click=lambda: turn(pager.newer)).props(
                    "flat aria-label=Newer"
                )
                newer.set_enabled(len(pager.starts) > 1)
                older = ui.button("Older", icon="chevron_right", on_click=lambda: turn(pager.older)).props(
                    "flat aria-label=Older"
                )
                older.set_enabled(len(events) == PAGE)

    async def turn(move: Any) -> None:
        move()
        await show()

    await show()


def event_row(event: dict[str, Any], names: Directory) -> None:
    target = names.of(event["target_type"], event["target_id"]) if event["target_id"] else ""
    title = (
        f"{event['at'][:19].replace('T', ' ')} · {event['actor']} · {event['action']} · "
        f"{event['target_type']} {target}"
        + (f" · {names.workspace(event['workspace_id'])}" if event["workspace_id"] else "")
    )
    with ui.expansion(title).classes("w-full border-b").mark(f"event-{event['id']}"):
        with ui.row().classes("w-full gap-4 no-wrap"):
            for label, image in (("before", event["before"]), ("after", event["after"])):
                with ui.column().classes("w-1/2"):
                    ui.label(label).classes("font-semibold")
                    # a plain label, not ui.code: that element polls every 100 ms, fifty rows of it add up
                    ui.label(image_text(image)).classes("w-full font-mono text-xs whitespace-pre-wrap")
        if event["request_id"]:
            ui.label(f"request {event['request_id']}").classes("text-xs text-gray-500")
