"""``sluice admin audit`` and ``sluice admin trusted-proxies``: reading the audit log, and the run-time proxies.

``trusted-proxies`` is ``PUT /admin/v1/settings`` with ``trusted_proxies``: the stored list wins over the
configuration file's ``server.trusted_proxies`` until ``--reset``; running gateways sharing Redis reload it at once,
the others within their 15 s refresh.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, load, out, with_db
from sluice.identity.audit import CLI_ACTOR, audit, audit_events
from sluice.identity.cli import admin_cli, notify
from sluice.identity.cli_keys import usage
from sluice.identity.network import normalise_networks
from sluice.identity.runtime_settings import set_trusted_proxies, stored_trusted_proxies
from sluice.store.db import Database
from sluice.store.models import AuditEvent

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d`` ago, or an ISO 8601 time (UTC when it names no zone); ValueError otherwise."""
    duration = _DURATION.fullmatch(text.strip())
    if duration is not None:
        seconds = float(duration.group(1)) * _UNITS[duration.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a duration such as 2h or 7d, or an ISO time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _image(event: AuditEvent) -> str:
    parts = []
    if event.before is not None:
        parts.append("before " + json.dumps(event.before, sort_keys=True, default=str))
    if event.after is not None:
        parts.append("after " + json.dumps(event.after, sort_keys=True, default=str))
    return "; ".join(parts)


@admin_cli.command("audit")
def audit_log(
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. key.revoke.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only changes by this actor, e.g. cli or user:<id>.")] = None,
    target: Annotated[str | None, typer.Option(help="Only changes to this object id.")] = None,
    workspace: Annotated[str | None, typer.Option(help="Only this workspace's events.")] = None,
    since: Annotated[str | None, typer.Option(help="Since a time (ISO 8601) or for a duration (30m, 2h, 7d).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many events, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show the audit log: who changed what, when, before and after (never secrets)."""
    settings = load(config, data_dir=data_dir)
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise usage(str(exc)) from None

    async def work(db: Database) -> list[AuditEvent]:
        async with db.session() as session:
            return await audit_events(
                session,
                workspace_id=workspace,
                since=start,
                action=action,
                actor=actor,
                target_id=target,
                limit=limit,
            )

    events = with_db(settings, work)
    if as_json:
        for e in events:
            line = {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "workspace_id": e.workspace_id,
                "before": e.before,
                "after": e.after,
                "request_id": e.request_id,
            }
            out.print(json.dumps(line, default=str), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table("at (UTC)", "actor", "action", "target", "workspace", "change")
    for e in events:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            f"{e.target_type}:{e.target_id or '-'}",
            e.workspace_id or "-",
            _image(e),
        )
    out.print(table)


def _proxies_image(configured: list[str], stored: list[str] | None) -> dict[str, object]:
    """The settings' audit image of the trusted proxies (the API's fields)."""
    return {"trusted_proxies": configured if stored is None else stored, "trusted_proxies_stored": stored is not None}


@admin_cli.command("trusted-proxies")
def trusted_proxies(
    cidrs: Annotated[list[str] | None, typer.Argument(help="Networks whose X-Forwarded-For is believed.")] = None,
    none: Annotated[bool, typer.Option("--none", help="Trust no proxy (the peer is always the client).")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the configuration's server.trusted_proxies.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show or set the trusted proxies (no arguments: show them)."""
    settings = load(config, data_dir=data_dir)
    try:
        configured = normalise_networks(settings.server.trusted_proxies)
    except ValueError as exc:
        raise usage(f"server.trusted_proxies: {exc}") from None
    if sum((bool(cidrs), none, reset)) > 1:
        raise usage("Give networks, --none or --reset, not several.")
    change: list[str] | None = None
    if cidrs:
        try:
            change = normalise_networks(cidrs)
        except ValueError as exc:
            raise usage(str(exc)) from None
    elif none:
        change = []

    async def work(db: Database) -> list[str] | None:
        async with db.session() as session:
            before = await stored_trusted_proxies(session)
            if change is None and not reset:
                return before
            await set_trusted_proxies(session, change)
            old, new = _proxies_image(configured, before), _proxies_image(configured, change)
            changed = [name for name in old if old[name] != new[name]]  # as the API records it
            audit(
                session,
                CLI_ACTOR,
                "settings.update",
                "settings",
                "trusted_proxies",
                before={name: old[name] for name in changed},
                after={name: new[name] for name in changed},
            )
            return change

    stored = with_db(settings, work)
    if stored is None:
        out.print(f"Trusted proxies: {', '.join(configured) or 'none'} (from the configuration).", markup=False)
    else:
        out.print(f"Trusted proxies: {', '.join(stored) or 'none'} (set at run time).", markup=False)
    if change is not None or reset:
        notify(settings, "rules")
