"""``sluice admin user-create|user-set|reset-link|workspaces|workspace-update|workspace-disable|workspace-enable``.

The same changes as ``POST /admin/v1/users``, ``PATCH /admin/v1/users/{id}``,
``POST /admin/v1/users/{id}/password-reset`` and ``PATCH /admin/v1/workspaces/{id}``, through
:mod:`sluice.identity.changes`, so they read alike in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sluice.cli_common import ConfigOpt, DataDirOpt, load, out, with_db
from sluice.errors import NotFound, SluiceError
from sluice.identity.accounts import RESET_TTL, create_reset
from sluice.identity.audit import CLI_ACTOR
from sluice.identity.changes import create_user, update_user, update_workspace
from sluice.identity.cli import admin_cli, fail, notify
from sluice.identity.cli_keys import model_list, usage
from sluice.identity.key_service import find_user
from sluice.identity.principal import PRIORITY_ORDER
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, User, Workspace

UserArg = Annotated[str, typer.Argument(help="Id or email.")]
WorkspaceArg = Annotated[str, typer.Argument(help="Workspace id.")]
PriorityOpt = Annotated[str | None, typer.Option(help=f"Priority class: {', '.join(PRIORITY_ORDER)}.")]
ClearPriorityOpt = Annotated[bool, typer.Option("--clear-priority", help="Remove the own priority class.")]


def _priority_changes(priority: str | None, clear: bool) -> dict[str, Any]:
    if priority is not None and clear:
        raise usage("Give either --priority or --clear-priority.")
    if priority is not None and priority not in PRIORITY_ORDER:
        raise usage(f"Unknown priority class (known: {', '.join(PRIORITY_ORDER)}).")
    if priority is not None or clear:
        return {"priority": priority}
    return {}


@admin_cli.command("user-create")
def user_create(
    email: Annotated[str, typer.Argument(help="The new user's email.")],
    workspace: Annotated[str, typer.Option(help="The workspace they join.")] = DEFAULT_WORKSPACE_ID,
    role: Annotated[Literal["owner", "member", "viewer"], typer.Option(help="Their role there.")] = "member",
    priority: PriorityOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an active account (whatever the registration mode) and print the link to set its password."""
    settings = load(config, data_dir=data_dir)
    _priority_changes(priority, False)  # validates the class

    async def work(db: Database) -> tuple[User, str]:
        async with db.session() as session:
            user = await create_user(
                session, CLI_ACTOR, email, password=None, workspace_id=workspace, role=role, priority=priority
            )
            token, _expires = await create_reset(session, user.id, CLI_ACTOR)
        return user, token

    try:
        user, token = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    hours = int(RESET_TTL.total_seconds() // 3600)
    out.print(f"Created {user.email} ({user.id}), {role} in {workspace}.", markup=False)
    out.print(f"Hand them this link to set a password (single use, valid {hours} h; after the gateway's address):")
    out.print(f"/ui/reset?token={token}", markup=False, highlight=False)


@admin_cli.command("user-set")
def user_set(
    user: UserArg,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Make or unmake a gateway admin.", show_default=False)
    ] = None,
    priority: PriorityOpt = None,
    clear_priority: ClearPriorityOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a user's gateway-admin flag or priority class (workspace roles: `member-set`)."""
    settings = load(config, data_dir=data_dir)
    changes = _priority_changes(priority, clear_priority)
    if admin is not None:
        changes["is_admin"] = admin
    if not changes:
        raise usage("Nothing to change: give --admin, --no-admin, --priority or --clear-priority.")

    async def work(db: Database) -> User:
        found = await find_user(db, user)
        async with db.session() as session:
            row = await session.get(User, found.id)
            if row is None:
                raise NotFound(f"No user {user!r}.")
            update_user(session, CLI_ACTOR, row, changes)
        return row

    try:
        row = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    role = "a gateway admin" if row.is_admin else "not a gateway admin"
    priority_text = row.priority or "none of its own (the workspace's applies)"
    out.print(f"{row.email} is {role}; priority class: {priority_text}.", markup=False)
    notify(settings, "user", row.id)


@admin_cli.command("reset-link")
def reset_link(user: UserArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create a single-use password-reset link for a user (shown once; Sluice sends no email)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> str:
        found = await find_user(db, user)
        async with db.session() as session:
            token, _expires = await create_reset(session, found.id, CLI_ACTOR)
        return token

    try:
        token = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    hours = int(RESET_TTL.total_seconds() // 3600)
    out.print(f"Hand this link to {user} (single use, valid {hours} h; append it to the gateway's address):")
    out.print(f"/ui/reset?token={token}", markup=False, highlight=False)


@admin_cli.command("workspaces")
def workspaces(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List workspaces."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> list[Workspace]:
        async with db.session() as session:
            return list((await session.execute(select(Workspace).order_by(Workspace.created_at))).scalars())

    table = Table("id", "name", "status", "priority", "models", "created")
    for ws in with_db(settings, work):
        table.add_row(
            ws.id,
            ws.name,
            "disabled" if ws.disabled_at else "active",
            ws.priority or "-",
            ",".join(ws.allowed_models) if ws.allowed_models is not None else "all",
            ws.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def _update_workspace(ident: str, changes: dict[str, Any], config: ConfigOpt, data_dir: DataDirOpt) -> None:
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> Workspace:
        async with db.session() as session:
            ws = await session.get(Workspace, ident)
            if ws is None:
                raise NotFound(f"No workspace {ident!r}.")
            await update_workspace(session, CLI_ACTOR, ws, changes)
        return ws

    try:
        ws = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    except IntegrityError:
        raise fail(ValueError(f"A workspace named {changes.get('name')!r} already exists.")) from None
    status = "disabled" if ws.disabled_at else "active"
    out.print(f"Workspace {ws.name} ({ws.id}) is {status}.", markup=False)
    notify(settings, "workspace", ws.id)


@admin_cli.command("workspace-update")
def workspace_update(
    workspace: WorkspaceArg,
    name: Annotated[str | None, typer.Option(help="A new unique name.")] = None,
    priority: PriorityOpt = None,
    clear_priority: ClearPriorityOpt = False,
    models: Annotated[str | None, typer.Option(help="Comma-separated models the workspace may use.")] = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Let the workspace use every model.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rename a workspace or change its priority class or models (disabling: `workspace-disable`)."""
    changes = _priority_changes(priority, clear_priority)
    if name is not None:
        changes["name"] = name
    if models is not None and all_models:
        raise usage("Give either --models or --all-models.")
    if models is not None or all_models:
        changes["allowed_models"] = None if all_models else model_list(models or "")
    if not changes:
        raise usage("Nothing to change: give --name, --priority, --clear-priority, --models or --all-models.")
    _update_workspace(workspace, changes, config, data_dir)


@admin_cli.command("workspace-disable")
def workspace_disable(workspace: WorkspaceArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Disable a workspace: its keys and its members' sessions there stop working."""
    _update_workspace(workspace, {"disabled": True}, config, data_dir)


@admin_cli.command("workspace-enable")
def workspace_enable(workspace: WorkspaceArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enable a disabled workspace again."""
    _update_workspace(workspace, {"disabled": False}, config, data_dir)
