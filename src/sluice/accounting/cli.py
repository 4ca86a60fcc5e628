"""``sluice prices`` (editable price table) and ``sluice usage`` (summaries and CSV export), through the accounting
room's services (:class:`~sluice.accounting.stored.StoredPrices`, :class:`~sluice.accounting.reports.UsageReports`;
the admin API's usage routes call the same reports)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from sluice.accounting.analytics import Totals, UsageFilter
from sluice.accounting.prices import ModelPrice, nanos_to_units
from sluice.accounting.reports import UsageReports
from sluice.accounting.stored import StoredPrices
from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.store.db import Database

prices_cli = typer.Typer(
    help="Prices per model (per million tokens), overriding configured and default ones.", no_args_is_help=True
)
usage_cli = typer.Typer(help="Usage and cost summaries and exports.", no_args_is_help=True)


@prices_cli.command("set")
def prices_set(
    model: Annotated[str, typer.Argument(help="The public model name.")],
    input_price: Annotated[float, typer.Option("--input", min=0, help="Per million input tokens.")],
    output_price: Annotated[float, typer.Option("--output", min=0, help="Per million output tokens.")],
    cached_input: Annotated[float | None, typer.Option(min=0, help="Per million cached input tokens.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a model's price; running gateways apply it within 15 s."""
    settings = load(config, data_dir=data_dir)
    price = ModelPrice(input_price, output_price, cached_input)
    with_db(settings, lambda db: StoredPrices(db).set(model, price))
    out.print(f"Price set for {model}.", markup=False)


@prices_cli.command("list")
def prices_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stored price overrides."""
    settings = load(config, data_dir=data_dir)
    table = Table("model", "input", "output", "cached input")
    for row in with_db(settings, lambda db: StoredPrices(db).list()):
        table.add_row(
            row.model,
            f"{row.input:g}",
            f"{row.output:g}",
            f"{row.cached_input:g}" if row.cached_input is not None else "-",
        )
    out.print(table)


@prices_cli.command("clear")
def prices_clear(model: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Remove a model's stored price (configured or default prices apply again)."""
    settings = load(config, data_dir=data_dir)
    if not with_db(settings, lambda db: StoredPrices(db).clear(model)):
        err.print(f"No stored price for {model}.", markup=False)
        raise typer.Exit(1)
    out.print(f"Price cleared for {model}.", markup=False)


def _filter(days: int, workspace: str | None, key: str | None, user: str | None, model: str | None) -> UsageFilter:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return UsageFilter(end - timedelta(days=days), end, frozenset({workspace}) if workspace else None, key, user, model)


@usage_cli.command("summary")
def usage_summary(
    days: Annotated[int, typer.Option(min=1, max=3660, help="Whole UTC days up to today.")] = 30,
    by: Annotated[
        Literal["model", "key", "user", "workspace"], typer.Option(help="Break down by model, key, user or workspace.")
    ] = "model",
    workspace: str | None = None,
    key: str | None = None,
    user: str | None = None,
    model: str | None = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Requests, tokens and cost over the last days, with the top spenders."""
    settings = load(config, data_dir=data_dir)
    flt = _filter(days, workspace, key, user, model)

    async def work(db: Database) -> tuple[Totals, list[dict[str, Any]]]:
        reports = UsageReports(db)
        return await reports.totals(flt), await reports.top(flt, by, "cost", 20)

    totals, top = with_db(settings, work)
    out.print(
        f"Last {days} days: {totals.requests} requests ({totals.errors} errors), {totals.prompt_tokens} prompt and "
        f"{totals.completion_tokens} completion tokens, cost {nanos_to_units(totals.cost_nanos):.6f}",
        markup=False,
    )
    table = Table(by, "requests", "prompt tokens", "completion tokens", "cost")
    for row in top:
        table.add_row(
            str(row["id"]),
            str(row["requests"]),
            str(row["prompt_tokens"]),
            str(row["completion_tokens"]),
            f"{nanos_to_units(int(row['cost_nanos'])):.6f}",
        )
    out.print(table)


@usage_cli.command("export")
def usage_export(
    days: Annotated[int, typer.Option(min=1, max=3660, help="Whole UTC days up to today.")] = 30,
    workspace: str | None = None,
    key: str | None = None,
    user: str | None = None,
    model: str | None = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Every usage record as CSV on standard output."""
    settings = load(config, data_dir=data_dir)
    flt = _filter(days, workspace, key, user, model)

    async def work(db: Database) -> None:
        async for chunk in UsageReports(db).csv_chunks(flt):
            sys.stdout.write(chunk)

    with_db(settings, work)
