"""``sluice admin audit`` and ``sluice admin trusted-proxies``: reading the audit log, and the run-time proxies.

``trusted-proxies`` is ``PUT /admin/v1/settings`` with ``trusted_proxies`` (the same service, so the same audit row):
the stored list wins over the configuration file's ``server.trusted_proxies`` until ``--reset``; running gateways
sharing Redis reload it at once, the others within their 15 s refresh.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, out
from sluice.identity.access_service import GatewaySettings
from sluice.identity.audit import AuditQuery
from sluice.identity.cli import admin_cli, operator, usage
from sluice.identity.grants import OPERATOR
from sluice.identity.network import normalise_networks
from sluice.identity.service import IdentityService
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
    op = operator(config, data_dir)
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise usage(str(exc)) from None
    query = AuditQuery(workspace_id=workspace, since=start, action=action, actor=actor, target_id=target, limit=limit)
    events = op.run(lambda identity: identity.access.audit_log(OPERATOR, query))
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


@admin_cli.command("trusted-proxies")
def trusted_proxies(
    cidrs: Annotated[list[str] | None, typer.Argument(help="Networks whose X-Forwarded-For is believed.")] = None,
    none: Annotated[bool, typer.Option("--none", help="Trust no proxy (the peer is always the client).")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the configuration's server.trusted_proxies.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show or set the trusted proxies (no arguments: show them)."""
    op = operator(config, data_dir)
    try:
        normalise_networks(op.settings.server.trusted_proxies)
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

    async def work(identity: IdentityService) -> GatewaySettings:
        if change is None and not reset:
            return await identity.access.gateway_settings()
        return await identity.access.update_settings(OPERATOR, {"trusted_proxies": change})

    now = op.run(work)
    where = "set at run time" if now.trusted_proxies_stored else "from the configuration"
    out.print(f"Trusted proxies: {', '.join(now.trusted_proxies) or 'none'} ({where}).", markup=False)
    op.told()
