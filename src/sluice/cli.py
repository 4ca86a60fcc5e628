"""The ``sluice`` command: serve, migrate, check-config; keys, admin, invites, limits, prices and usage live with
their rooms."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
import typer
from pydantic import SecretStr

from sluice.accounting.cli import prices_cli, usage_cli
from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.identity import cli_access, cli_keys, cli_settings, cli_users  # noqa: F401 - register their commands
from sluice.identity.cli import admin_cli, invites_cli, keys_cli
from sluice.limits.cli import limits_cli
from sluice.server.workers import check_workers  # light: reads the settings only
from sluice.store.private import METRICS_DIR, owner_only_umask, private_dir

if TYPE_CHECKING:
    from sluice.config import Settings
    from sluice.store.db import Database

# The server, the app and what only they need (uvicorn, FastAPI, NiceGUI, the providers' HTTP clients) are imported
# inside `serve`: `sluice keys list` and friends start in a fraction of the time (docs/development.md).
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
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Worker processes (several need Redis limits and a shared queue backend)."),
    ] = 1,
) -> None:
    """Start the gateway (SQLite, in-process limits and queue, and the mock model unless configured otherwise)."""
    import uvicorn

    from sluice.app import create_app
    from sluice.identity.master import load_or_create_master_key
    from sluice.observability.logging import configure_logging
    from sluice.server.serving import uvicorn_options

    overrides = {"server.host": host, "server.port": port, "data_dir": data_dir}
    settings = load(config, **overrides)
    check = check_workers(settings, workers)  # before anything is written: several workers need shared state
    if not check.ok:
        err.print(f"[bold red]Cannot run {workers} workers with this configuration:[/]")
        for problem in check.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    owner_only_umask()  # metrics and UI session files, made by libraries here and in the workers, are owner-only
    created = False
    if settings.master_key is None:
        key, created = load_or_create_master_key(settings.data_dir)
        settings = settings.model_copy(update={"master_key": SecretStr(key)})
    configure_logging(settings.logging)
    assert settings.master_key is not None
    _banner(settings, settings.master_key.get_secret_value(), created, _setup_code(settings))
    options = uvicorn_options(settings)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    for note in check.notes:
        log.info("per-worker state", note=note)
    _serve_workers(settings, config, overrides, workers, options)


def _serve_workers(
    settings: Settings, config: Path | None, overrides: dict[str, Any], workers: int, options: dict[str, Any]
) -> None:
    """Several processes on one port: each worker rebuilds the settings from the environment set here."""
    import uvicorn

    # Migrate once, here, before the workers start (they only check the schema).
    private_dir(settings.data_dir)
    with_db(settings, lambda db: db.migrate(), migrate=False)
    metrics_dir = settings.data_dir / METRICS_DIR
    shutil.rmtree(metrics_dir, ignore_errors=True)
    private_dir(metrics_dir)
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


def _setup_code(settings: Settings) -> str | None:
    """The first-run setup code while the gateway has no admin; None once it has one (or when that cannot be
    told here: the server then reports its own problem as it starts)."""
    from sqlalchemy.exc import SQLAlchemyError

    from sluice.identity.first_run import FirstRun, setup_code
    from sluice.identity.jwt_tokens import WeakSecret, resolve_secret
    from sluice.services import is_dev_mode

    if not settings.ui or (settings.auth.admin_email and settings.auth.admin_password is not None):
        return None  # no UI to set up in, or the first admin comes from the configuration as the server starts
    try:
        secret = resolve_secret(settings.auth, settings.data_dir, dev_mode=is_dev_mode(settings))

        async def still_open(db: Database) -> bool:
            return await FirstRun(db, settings).is_open()

        return setup_code(secret) if with_db(settings, still_open) else None
    except (WeakSecret, SQLAlchemyError, OSError) as exc:
        log.debug("could not tell whether the first-run setup is open", error=type(exc).__name__)
        return None


def _banner(settings: Settings, master_key: str, created: bool, code: str | None) -> None:
    from sluice.identity.master import MASTER_KEY_FILE
    from sluice.observability.logging import is_console
    from sluice.web import self_url

    base = f"http://{settings.server.host}:{settings.server.port}"
    ui = f"{self_url(settings.server.host, settings.server.port)}/ui" if settings.ui else None
    if not is_console(settings.logging, sys.stderr):
        # JSON logs stay JSON on every line, and a generated key is never written to them (only to its file). The
        # setup code is: containers show only their logs, and it stops working once the first admin exists.
        log.info("serving", url=base, ui=ui, data_dir=str(settings.data_dir.resolve()))
        if created:
            log.warning("generated a master key", kept_in=str((settings.data_dir / MASTER_KEY_FILE).resolve()))
        if code is not None:
            log.warning("no admin yet: create the first one in the web UI with this setup code", setup_code=code)
        return
    err.print(f"[bold]Sluice[/] listening on {base}  (data: {settings.data_dir.resolve()})")
    if ui is not None:
        err.print(f"Web UI: {ui}", markup=False, highlight=False)
    if code is not None:
        err.print(f"No admin yet: open {ui}/setup and enter the one-time setup code {code}", markup=False)
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
            private_dir(settings.data_dir)
        await db.migrate()
        return await db.current_revision()

    revision = with_db(settings, work, migrate=False)
    out.print(f"Database is at revision {revision}.")


@cli.command("check-config")
def check_config(
    config: ConfigOpt = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Also check what `serve --workers N` needs (shared state).")
    ] = 1,
) -> None:
    """Validate the configuration and report every problem with its path in the file."""
    settings = load(config)
    check = check_workers(settings, workers)
    if not check.ok:
        err.print(f"[bold red]Configuration problems for {workers} workers:[/]")
        for problem in check.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    models = ", ".join(m.name for m in settings.models) or "none configured"
    providers = ", ".join(f"{p.name} ({p.kind})" for p in settings.providers) or "none configured"
    out.print(f"Configuration OK{f' ({settings.source})' if settings.source else ''}.")
    out.print(f"  providers: {providers}", markup=False)
    out.print(f"  models: {models}", markup=False)
    if workers > 1:
        out.print(f"  {workers} workers: limits and queues are shared; per worker:", markup=False)
        for note in check.notes:
            out.print(f"    - {note}", markup=False, highlight=False)


def main() -> None:
    cli()
