"""The ``sluice`` command: serve, migrate, check-config; keys, admin, invites, limits, prices and usage live with
their rooms."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
import uvicorn
from pydantic import SecretStr

from sluice.accounting.cli import prices_cli, usage_cli
from sluice.app import create_app
from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.config import Settings
from sluice.identity import cli_access, cli_keys, cli_settings, cli_users  # noqa: F401 - register their commands
from sluice.identity.cli import admin_cli, invites_cli, keys_cli
from sluice.identity.master import MASTER_KEY_FILE, load_or_create_master_key
from sluice.limits.cli import limits_cli
from sluice.observability.logging import configure_logging, is_console
from sluice.server.serving import uvicorn_options
from sluice.store.db import Database

log = structlog.get_logger("sluice.cli")

cli = typer.Typer(
    help="Sluice: a self-hosted LLM gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(admin_cli, name="admin")
cli.add_typer(invites_cli, name="invites")
cli.add_typer(limits_cli, name="limits")
cli.add_typer(prices_cli, name="prices")
cli.add_typer(usage_cli, name="usage")


@cli.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 4000).")] = None,
    data_dir: DataDirOpt = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (several need Redis).")] = 1,
) -> None:
    """Start the gateway (SQLite, in-process limits and queue, and the mock model unless configured otherwise)."""
    overrides = {"server.host": host, "server.port": port, "data_dir": data_dir}
    settings = load(config, **overrides)
    created = False
    if settings.master_key is None:
        key, created = load_or_create_master_key(settings.data_dir)
        settings = settings.model_copy(update={"master_key": SecretStr(key)})
    configure_logging(settings.logging)
    assert settings.master_key is not None
    _banner(settings, settings.master_key.get_secret_value(), created)
    options = uvicorn_options(settings)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    _serve_workers(settings, config, overrides, workers, options)


def _serve_workers(
    settings: Settings, config: Path | None, overrides: dict[str, Any], workers: int, options: dict[str, Any]
) -> None:
    """Several processes on one port: each worker rebuilds the settings from the environment set here."""
    if settings.redis_url is None or settings.limits.backend != "redis":
        err.print(
            "Several workers share limits and queues only through Redis: set redis_url and limits.backend: redis "
            "(in-process counters would let each worker admit the full limit)."
        )
        raise typer.Exit(2)
    # Migrate once, here, before the workers start (they only check the schema).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with_db(settings, lambda db: db.migrate(), migrate=False)
    metrics_dir = settings.data_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir.resolve()),
        "SLUICE_MASTER_KEY": settings.master_key.get_secret_value() if settings.master_key else "",
        "SLUICE_DATA_DIR": str(settings.data_dir.resolve()),
        "SLUICE_HOST": settings.server.host,
        "SLUICE_PORT": str(settings.server.port),
    }
    if config is not None:
        env["SLUICE_CONFIG"] = str(config.resolve())
    os.environ.update({k: v for k, v in env.items() if v})
    uvicorn.run("sluice.app:create_app_from_environment", factory=True, workers=workers, **options)


def _banner(settings: Settings, master_key: str, created: bool) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}"
    if not is_console(settings.logging, sys.stderr):
        # JSON logs stay JSON on every line, and a generated key is never written to them (only to its file).
        log.info("serving", url=base, data_dir=str(settings.data_dir.resolve()))
        if created:
            log.warning("generated a master key", kept_in=str((settings.data_dir / MASTER_KEY_FILE).resolve()))
        return
    err.print(f"[bold]Sluice[/] listening on {base}  (data: {settings.data_dir.resolve()})")
    if created:
        err.print(f"Generated a master key (kept in {settings.data_dir / 'master_key'}):")
        err.print(f"  {master_key}", markup=False, highlight=False)
        err.print("Try it:")
        err.print(
            f"  curl {base}/v1/chat/completions -H 'Authorization: Bearer {master_key}' "
            "-H 'Content-Type: application/json' "
            """-d '{"model": "mock-1", "messages": [{"role": "user", "content": "Hello"}]}'""",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@cli.command()
def migrate(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create or upgrade the database schema to the newest version."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> str | None:
        if db.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await db.migrate()
        return await db.current_revision()

    revision = with_db(settings, work, migrate=False)
    out.print(f"Database is at revision {revision}.")


@cli.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration and report every problem with its path in the file."""
    settings = load(config)
    models = ", ".join(m.name for m in settings.models) or "none configured"
    providers = ", ".join(f"{p.name} ({p.kind})" for p in settings.providers) or "none configured"
    out.print(f"Configuration OK{f' ({settings.source})' if settings.source else ''}.")
    out.print(f"  providers: {providers}", markup=False)
    out.print(f"  models: {models}", markup=False)


def main() -> None:
    cli()
