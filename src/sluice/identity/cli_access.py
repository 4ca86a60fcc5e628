"""``sluice admin member-set|member-remove|ip-rules|ip-rule-add|ip-rule-remove``: memberships and IP rules offline.

The same changes as ``PUT|DELETE /admin/v1/workspaces/{id}/members/{user_id}`` and ``GET|POST|DELETE
/admin/v1/ip-rules``, through the same services, so they obey the same rules and read alike in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, out
from sluice.identity.access_service import RuleTerms
from sluice.identity.cli import admin_cli, operator, usage
from sluice.identity.cli_keys import model_list
from sluice.identity.grants import OPERATOR
from sluice.identity.network import parse_network
from sluice.identity.principal import PRIORITY_ORDER
from sluice.identity.service import IdentityService
from sluice.identity.workspace_service import Member


@admin_cli.command("member-set")
def member_set(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
    role: Annotated[Literal["owner", "member", "viewer"], typer.Argument(help="owner, member or viewer")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Put a user in a workspace with a role (or change their role there)."""
    op = operator(config, data_dir)

    async def work(identity: IdentityService) -> Member:
        found = await identity.users.find(user)
        return await identity.workspaces.put_member(OPERATOR, workspace, found.id, role)

    op.run(work)
    out.print(f"{user} is {role} in {workspace}.", markup=False)
    op.told()


@admin_cli.command("member-remove")
def member_remove(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    user: Annotated[str, typer.Argument(help="User id or email.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Take a user out of a workspace."""
    op = operator(config, data_dir)

    async def work(identity: IdentityService) -> None:
        found = await identity.users.find(user)
        await identity.workspaces.remove_member(OPERATOR, workspace, found.id)

    op.run(work)
    out.print(f"{user} left {workspace}.", markup=False)
    op.told()


@admin_cli.command("ip-rules")
def ip_rules(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List IP rules."""
    table = Table("id", "cidr", "scope", "workspace", "key", "anonymous", "priority", "models", "note")
    for rule in operator(config, data_dir).run(lambda identity: identity.access.rules(OPERATOR)):
        table.add_row(
            rule.id,
            rule.cidr,
            rule.scope,
            rule.workspace_id or "-",
            rule.key_id or "-",
            "yes" if rule.anonymous else "",
            rule.priority or "-",
            ",".join(rule.allowed_models) if rule.allowed_models is not None else "-",
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
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models anonymous callers may use (default all).")
    ] = None,
    note: Annotated[str, typer.Option(help="A note for yourself.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add an IP rule (see docs/identity.md for what each scope means)."""
    op = operator(config, data_dir)
    try:
        parse_network(cidr)
    except ValueError as exc:
        raise usage(str(exc)) from None
    if priority is not None and priority not in PRIORITY_ORDER:
        raise usage(f"Unknown priority class (known: {', '.join(PRIORITY_ORDER)}).")
    if (priority is not None or models is not None) and not anonymous:
        raise usage("--priority and --models apply only to --anonymous rules.")
    if (scope == "workspace" and not workspace) or (scope == "key" and not key) or (anonymous and scope == "key"):
        raise usage("Scope workspace needs --workspace, scope key needs --key; anonymous rules cannot be per key.")
    terms = RuleTerms(
        cidr=cidr,
        scope=scope,
        workspace_id=workspace,
        key_id=key,
        anonymous=anonymous,
        priority=priority,
        allowed_models=model_list(models) if models is not None else None,
        note=note,
    )
    rule = op.run(lambda identity: identity.access.create_rule(OPERATOR, terms))
    out.print(f"Added IP rule {rule.id} ({rule.cidr}, {scope}).", markup=False)
    op.told()


@admin_cli.command("ip-rule-remove")
def ip_rule_remove(
    ident: Annotated[str, typer.Argument(help="The rule's id.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Remove an IP rule."""
    op = operator(config, data_dir)
    op.run(lambda identity: identity.access.delete_rule(OPERATOR, ident))
    out.print(f"Removed IP rule {ident}.", markup=False)
    op.told()
