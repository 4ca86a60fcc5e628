"""``sluice admin member-set|member-remove|ip-rules|ip-rule-add|ip-rule-remove``: memberships and IP rules offline."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table
from sqlalchemy import select

from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.errors import NotFound, SluiceError
from sluice.identity.audit import CLI_ACTOR, audit
from sluice.identity.changes import rule_image
from sluice.identity.cli import admin_cli, notify
from sluice.identity.key_service import find_user
from sluice.identity.network import parse_network
from sluice.identity.principal import PRIORITY_ORDER
from sluice.store.db import Database
from sluice.store.models import ApiKey, IpRule, Membership, Workspace


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(message, markup=False)
    return typer.Exit(code)


@admin_cli.command("member-set")
def member_set(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
    role: Annotated[Literal["owner", "member", "viewer"], typer.Argument(help="owner, member or viewer")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Put a user in a workspace with a role (or change their role there)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> str:
        found = await find_user(db, user)
        async with db.session() as session:
            if await session.get(Workspace, workspace) is None:
                raise NotFound(f"No workspace {workspace!r}.")
            member = await session.get(Membership, (found.id, workspace))
            before = {"role": member.role} if member else None
            if member is None:
                session.add(Membership(user_id=found.id, workspace_id=workspace, role=role))
            else:
                member.role = role
            audit(
                session,
                CLI_ACTOR,
                "membership.put",
                "membership",
                f"{found.id}@{workspace}",
                workspace_id=workspace,
                before=before,
                after={"role": role},
            )
        return found.id

    try:
        user_id = with_db(settings, work)
    except SluiceError as exc:
        raise _fail(exc.message) from None
    out.print(f"{user} is {role} in {workspace}.", markup=False)
    notify(settings, "user", user_id)


@admin_cli.command("member-remove")
def member_remove(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Take a user out of a workspace."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> str:
        found = await find_user(db, user)
        async with db.session() as session:
            member = await session.get(Membership, (found.id, workspace))
            if member is None:
                raise NotFound(f"{user} is not in workspace {workspace!r}.")
            await session.delete(member)
            audit(
                session,
                CLI_ACTOR,
                "membership.delete",
                "membership",
                f"{found.id}@{workspace}",
                workspace_id=workspace,
                before={"role": member.role},
            )
        return found.id

    try:
        user_id = with_db(settings, work)
    except SluiceError as exc:
        raise _fail(exc.message) from None
    out.print(f"{user} left {workspace}.", markup=False)
    notify(settings, "user", user_id)


@admin_cli.command("ip-rules")
def ip_rules(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List IP rules."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> list[IpRule]:
        async with db.session() as session:
            return list((await session.execute(select(IpRule).order_by(IpRule.created_at))).scalars())

    table = Table("id", "cidr", "scope", "workspace", "key", "anonymous", "priority", "note")
    for rule in with_db(settings, work):
        table.add_row(
            rule.id,
            rule.cidr,
            rule.scope,
            rule.workspace_id or "-",
            rule.key_id or "-",
            "yes" if rule.anonymous else "",
            rule.priority or "-",
            rule.note,
        )
    out.print(table)


@admin_cli.command("ip-rule-add")
def ip_rule_add(
    cidr: Annotated[str, typer.Argument(help="A network, e.g. 10.0.0.0/8.")],
    scope: Annotated[Literal["global", "workspace", "key"], typer.Option(help="global, workspace or key")] = "global",
    workspace: Annotated[str | None, typer.Option(help="Workspace id (scope workspace, or anonymous rules).")] = None,
    key: Annotated[str | None, typer.Option(help="Key id (scope key).")] = None,
    anonymous: Annotated[bool, typer.Option(help="Admit callers without credentials from this network.")] = False,
    priority: Annotated[str | None, typer.Option(help="Priority class of anonymous callers.")] = None,
    note: Annotated[str, typer.Option(help="A note for yourself.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add an IP rule (see docs/identity.md for what each scope means)."""
    settings = load(config, data_dir=data_dir)
    try:
        network = str(parse_network(cidr))
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    if priority is not None and priority not in PRIORITY_ORDER:
        raise _fail(f"Unknown priority class (known: {', '.join(PRIORITY_ORDER)}).", 2)
    if priority is not None and not anonymous:
        raise _fail("--priority applies only to --anonymous rules.", 2)
    if (scope == "workspace" and not workspace) or (scope == "key" and not key) or (anonymous and scope == "key"):
        raise _fail("Scope workspace needs --workspace, scope key needs --key; anonymous rules cannot be per key.", 2)

    async def work(db: Database) -> IpRule:
        async with db.session() as session:
            if workspace is not None and await session.get(Workspace, workspace) is None:
                raise NotFound(f"No workspace {workspace!r}.")
            found = await session.get(ApiKey, key) if key is not None else None
            if key is not None and found is None:
                raise NotFound(f"No API key {key!r}.")
            rule = IpRule(
                cidr=network,
                scope=scope,
                # as the API files them: a key's rule under the key's workspace (its owners see it)
                workspace_id=found.workspace_id if found is not None and scope == "key" else workspace,
                key_id=key if scope == "key" else None,
                anonymous=anonymous,
                priority=priority,
                note=note,
                created_by="cli",
            )
            session.add(rule)
            await session.flush()
            audit(
                session,
                CLI_ACTOR,
                "ip_rule.create",
                "ip_rule",
                rule.id,
                workspace_id=rule.workspace_id,
                after=rule_image(rule),
            )
        return rule

    try:
        rule = with_db(settings, work)
    except SluiceError as exc:
        raise _fail(exc.message) from None
    out.print(f"Added IP rule {rule.id} ({network}, {scope}).", markup=False)
    notify(settings, "rules")


@admin_cli.command("ip-rule-remove")
def ip_rule_remove(
    ident: Annotated[str, typer.Argument(help="The rule's id.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Remove an IP rule."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> bool:
        async with db.session() as session:
            rule = await session.get(IpRule, ident)
            if rule is None:
                return False
            before = rule_image(rule)
            await session.delete(rule)
            audit(session, CLI_ACTOR, "ip_rule.delete", "ip_rule", ident, workspace_id=rule.workspace_id, before=before)
        return True

    if not with_db(settings, work):
        raise _fail(f"No IP rule {ident!r}.")
    out.print(f"Removed IP rule {ident}.", markup=False)
    notify(settings, "rules")
