"""What every ``sluice`` sub-command shares: consoles, the common options, settings and database access."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from sluice.config import Settings
from sluice.config_loading import load_settings
from sluice.errors import ConfigError
from sluice.store.db import Database
from sluice.store.private import private_dir

T = TypeVar("T")

# Piped output (scripts, CI logs) gets full-width tables instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (or SLUICE_CONFIG).", show_default=False),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (or SLUICE_DATA_DIR).", show_default=False)
]


def load(config: Path | None, **overrides: Any) -> Settings:
    """The settings, or every configuration problem printed and exit status 2."""
    try:
        return load_settings(config, overrides={k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        err.print("[bold red]Configuration problems:[/]")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def with_db(settings: Settings, work: Callable[[Database], Awaitable[T]], migrate: bool = True) -> T:
    """Run ``work`` against the configured database (migrating SQLite first, as the server would)."""

    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            if migrate and db.is_sqlite:
                private_dir(settings.data_dir)
                if not await db.is_current():  # looking costs less than an upgrade that finds nothing to do
                    await db.migrate()
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())
