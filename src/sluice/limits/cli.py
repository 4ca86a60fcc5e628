"""``sluice limits``: set, list and clear stored limit policies (per key, user, workspace and role default); show
a scope's spend against the budget admission applies to it. Changes are audited like the admin API's."""

from __future__ import annotations

import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from sluice.accounting.prices import nanos_to_units, units_to_nanos
from sluice.accounting.service import Accounting
from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.config import LIMIT_ROLES
from sluice.identity.audit import CLI_ACTOR, audit
from sluice.identity.key_repository import KeyRepository
from sluice.limits.memory import MemoryLimitStore
from sluice.limits.policy import ROLE_SCOPE, Limits, PolicyTable, Scope
from sluice.limits.repository import LimitRepository
from sluice.routing.catalog import ModelCatalog
from sluice.store.db import Database

limits_cli = typer.Typer(help="Per key, user and workspace limits and budgets.", no_args_is_help=True)

ScopeArg = Annotated[
    Literal["key", "user", "workspace", "role"],
    typer.Argument(help="key, user, workspace, or role (the default for a role's own key or user scope)"),
]
IdArg = Annotated[
    str, typer.Argument(help="The scope's id (for keys, the id or the visible prefix; for roles, the role).")
]


async def _scope_id(db: Database, scope: str, ident: str) -> str:
    if scope == ROLE_SCOPE:
        if ident not in LIMIT_ROLES:
            err.print(f"{ident!r} is not a role (the roles are {', '.join(LIMIT_ROLES)}).", markup=False)
            raise typer.Exit(1)
        return ident
    if scope != "key":
        return ident
    async with db.session() as session:
        key = await KeyRepository(session).by_id_or_prefix(ident)
    if key is None:
        err.print(f"No API key with id or prefix {ident!r}.", markup=False)
        raise typer.Exit(1)
    return key.id


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
    settings = load(config, data_dir=data_dir)
    limits = Limits(rpm, tpm, concurrent, units_to_nanos(budget) if budget is not None else None, period)

    async def work(db: Database) -> str:
        scope_id = await _scope_id(db, scope, ident)
        async with db.session() as session:
            await LimitRepository(session).put(scope, scope_id, limits)
            audit(session, CLI_ACTOR, "limits.put", scope, scope_id, after=_image(limits))
        return scope_id

    scope_id = with_db(settings, work)
    out.print(f"Limits set for {scope} {scope_id}.", markup=False)


@limits_cli.command("list")
def limits_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stored limit policies (configuration-file limits are shown by check-config)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> list[tuple[str, ...]]:
        async with db.session() as session:
            rows = await LimitRepository(session).list()
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
    for row in with_db(settings, work):
        table.add_row(*row)
    out.print(table)


@limits_cli.command("clear")
def limits_clear(scope: ScopeArg, ident: IdArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Remove a scope's stored limits (it falls back to the configuration and defaults)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> bool:
        scope_id = await _scope_id(db, scope, ident)
        async with db.session() as session:
            removed = await LimitRepository(session).remove(scope, scope_id)
            if removed:
                audit(session, CLI_ACTOR, "limits.delete", scope, scope_id)
            return removed

    if not with_db(settings, work):
        err.print(f"No stored limits for {scope} {ident}.", markup=False)
        raise typer.Exit(1)
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
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> tuple[Limits, str, int]:
        scope_id = await _scope_id(db, scope, ident)
        async with db.session() as session:
            repo = LimitRepository(session)
            policy = PolicyTable(settings.limits, await repo.all())
            role = await repo.role_of(scope, scope_id, workspace)
        limits, source = policy.resolve(scope, scope_id, role)
        accounting = Accounting(db, settings.data_dir, ModelCatalog({}))
        store = MemoryLimitStore(ZoneInfo(settings.limits.timezone), accounting.spent)
        return limits, source, await store.spent(Scope(scope, scope_id, limits), time.time())

    limits, source, spent = with_db(settings, work)
    budget = f"{nanos_to_units(limits.budget_nanos):g}" if limits.budget_nanos is not None else "no budget"
    out.print(
        f"{scope} {ident}: {nanos_to_units(spent):g} spent this {limits.period} ({budget}; limits from {source}).",
        markup=False,
    )


def _image(limits: Limits) -> dict[str, object]:
    budget = nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "concurrent": limits.concurrent,
        "budget": budget,
        "period": limits.period,
    }


def _num(value: int | None) -> str:
    return str(value) if value is not None else "-"
