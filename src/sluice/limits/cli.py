"""``sluice limits``: set, list and clear stored limit policies (per key, user, workspace and role default); show
a scope's spend against the budget admission applies to it. The commands call the admin API's own service
(:class:`sluice.limits.stored.StoredLimits`), so the same rules hold and changes are audited alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

import typer
from rich.table import Table

from sluice.accounting.prices import nanos_to_units, units_to_nanos
from sluice.cli_common import ConfigOpt, DataDirOpt, err, out
from sluice.config import LIMIT_ROLES
from sluice.identity.cli import operator
from sluice.identity.grants import OPERATOR
from sluice.identity.service import IdentityService
from sluice.limits.policy import ROLE_SCOPE, Limits
from sluice.limits.stored import Spend, StoredLimits
from sluice.store.db import Database

T = TypeVar("T")

limits_cli = typer.Typer(help="Per key, user and workspace limits and budgets.", no_args_is_help=True)

ScopeArg = Annotated[
    Literal["key", "user", "workspace", "role"],
    typer.Argument(help="key, user, workspace, or role (the default for a role's own key or user scope)"),
]
IdArg = Annotated[
    str, typer.Argument(help="The scope's id (for keys, the id or the visible prefix; for roles, the role).")
]


def _run(config: ConfigOpt, data_dir: DataDirOpt, work: Callable[[StoredLimits, IdentityService], Awaitable[T]]) -> T:
    """Run ``work`` with the stored limits (spend read as admission reads it: records shipped and spooled)."""
    op = operator(config, data_dir)
    settings = op.settings

    async def run(db: Database, identity: IdentityService) -> T:
        from sluice.accounting.service import Accounting
        from sluice.routing.catalog import ModelCatalog

        accounting = Accounting(db, settings.data_dir, ModelCatalog({}))
        return await work(StoredLimits(db, settings.limits, identity.subjects, accounting.spent), identity)

    return op.run_db(run)


def _check_role(scope: str, ident: str) -> None:
    if scope == ROLE_SCOPE and ident not in LIMIT_ROLES:
        err.print(f"{ident!r} is not a role (the roles are {', '.join(LIMIT_ROLES)}).", markup=False)
        raise typer.Exit(1)


async def _scope_id(identity: IdentityService, scope: str, ident: str) -> str:
    """The scope's id: a key may be named by its visible prefix."""
    return (await identity.keys.find(ident)).id if scope == "key" else ident


@limits_cli.command("set")
def limits_set(
    scope: ScopeArg,
    ident: IdArg,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens (input + output) per minute.")] = None,
    concurrent: Annotated[int | None, typer.Option(min=1, help="Requests at the same time.")] = None,
    budget: Annotated[float | None, typer.Option(min=0, help="Money per period.")] = None,
    period: Annotated[Literal["day", "week", "month"], typer.Option(help="Budget period.")] = "month",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a scope's limits (replacing what it had); running gateways apply them within 15 s."""
    _check_role(scope, ident)
    limits = Limits(rpm, tpm, concurrent, units_to_nanos(budget) if budget is not None else None, period)

    async def work(stored: StoredLimits, identity: IdentityService) -> str:
        scope_id = await _scope_id(identity, scope, ident)
        await stored.put(OPERATOR, scope, scope_id, limits)
        return scope_id

    scope_id = _run(config, data_dir, work)
    out.print(f"Limits set for {scope} {scope_id}.", markup=False)


@limits_cli.command("list")
def limits_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stored limit policies (configuration-file limits are shown by check-config)."""

    async def work(stored: StoredLimits, _identity: IdentityService) -> list[tuple[str, ...]]:
        rows = await stored.list()
        return [
            (
                r.scope_type,
                r.scope_id,
                _num(r.rpm),
                _num(r.tpm),
                _num(r.concurrent),
                f"{nanos_to_units(r.budget_nanos):g}" if r.budget_nanos is not None else "-",
                r.period,
            )
            for r in rows
        ]

    table = Table("scope", "id", "rpm", "tpm", "concurrent", "budget", "period")
    for row in _run(config, data_dir, work):
        table.add_row(*row)
    out.print(table)


@limits_cli.command("clear")
def limits_clear(scope: ScopeArg, ident: IdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Remove a scope's stored limits (it falls back to the configuration and defaults)."""
    _check_role(scope, ident)

    async def work(stored: StoredLimits, identity: IdentityService) -> None:
        await stored.remove(OPERATOR, scope, await _scope_id(identity, scope, ident))

    _run(config, data_dir, work)
    out.print(f"Limits cleared for {scope} {ident}.", markup=False)


@limits_cli.command("spend")
def limits_spend(
    scope: ScopeArg,
    ident: IdArg,
    workspace: Annotated[
        str | None, typer.Option(help="Users: the workspace whose role decides the role default (default: default).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Spend in the scope's current budget period, from its usage records, against the budget admission applies."""
    if scope == ROLE_SCOPE:
        err.print("A role has no spend of its own: ask for a key, user or workspace.", markup=False)
        raise typer.Exit(1)

    async def work(stored: StoredLimits, identity: IdentityService) -> Spend:
        return await stored.spend(OPERATOR, scope, await _scope_id(identity, scope, ident), workspace)

    spend = _run(config, data_dir, work)
    limits, source, spent = spend.resolved.limits, spend.resolved.source, spend.spent_nanos
    budget = f"{nanos_to_units(limits.budget_nanos):g}" if limits.budget_nanos is not None else "no budget"
    out.print(
        f"{scope} {ident}: {nanos_to_units(spent):g} spent this {limits.period} ({budget}; limits from {source}).",
        markup=False,
    )


def _num(value: int | None) -> str:
    return str(value) if value is not None else "-"
