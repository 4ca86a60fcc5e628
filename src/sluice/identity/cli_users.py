"""``sluice admin user-create|user-set|reset-link|workspaces|workspace-update|workspace-disable|workspace-enable``.

The same changes as ``POST /admin/v1/users``, ``PATCH /admin/v1/users/{id}``,
``POST /admin/v1/users/{id}/password-reset`` and ``PATCH /admin/v1/workspaces/{id}``, through the same services
(:class:`~sluice.identity.user_service.UserService`, :class:`~sluice.identity.workspace_service.WorkspaceService`),
so they obey the same rules and read alike in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, out
from sluice.identity.accounts import RESET_TTL
from sluice.identity.cli import admin_cli, operator, usage
from sluice.identity.cli_keys import models_change
from sluice.identity.grants import OPERATOR
from sluice.identity.principal import PRIORITY_ORDER
from sluice.identity.service import IdentityService
from sluice.identity.user_service import ResetLink
from sluice.store.models import DEFAULT_WORKSPACE_ID, User

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
    op = operator(config, data_dir)
    _priority_changes(priority, False)  # validates the class
    user, reset = op.run(
        lambda identity: identity.users.create(
            OPERATOR, email, password=None, workspace_id=workspace, role=role, priority=priority
        )
    )
    assert reset is not None  # made without a password: the link is how they set one
    hours = int(RESET_TTL.total_seconds() // 3600)
    out.print(f"Created {user.email} ({user.id}), {role} in {workspace}.", markup=False)
    out.print(f"Hand them this link to set a password (single use, valid {hours} h; after the gateway's address):")
    out.print(f"/ui/reset?token={reset.token}", markup=False, highlight=False)


@admin_cli.command("user-set")
def user_set(
    user: UserArg,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Make or unmake a gateway admin.", show_default=False)
    ] = None,
    priority: PriorityOpt = None,
    clear_priority: ClearPriorityOpt = False,
    password_login: Annotated[
        bool | None,
        typer.Option(
            "--password-login/--no-password-login",
            help="Allow or refuse password sign-in (refused: single sign-on only).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a user's gateway-admin flag, priority class or password sign-in (workspace roles: `member-set`)."""
    op = operator(config, data_dir)
    changes = _priority_changes(priority, clear_priority)
    if admin is not None:
        changes["is_admin"] = admin
    if password_login is not None:
        changes["password_login"] = password_login
    if not changes:
        raise usage(
            "Nothing to change: give --admin, --no-admin, --priority, --clear-priority or --[no-]password-login."
        )

    async def work(identity: IdentityService) -> User:
        return await identity.users.update(OPERATOR, (await identity.users.find(user)).id, changes)

    row = op.run(work)
    role = "a gateway admin" if row.is_admin else "not a gateway admin"
    priority_text = row.priority or "none of its own (the workspace's applies)"
    sign_in = "with a password or single sign-on" if row.password_login else "through single sign-on only"
    out.print(f"{row.email} is {role}; priority class: {priority_text}; signs in {sign_in}.", markup=False)
    op.told()


@admin_cli.command("reset-link")
def reset_link(user: UserArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create a single-use password-reset link for a user (shown once; Sluice sends no email)."""

    async def work(identity: IdentityService) -> ResetLink:
        return await identity.users.reset_link(OPERATOR, (await identity.users.find(user)).id)

    link = operator(config, data_dir).run(work)
    hours = int(RESET_TTL.total_seconds() // 3600)
    out.print(f"Hand this link to {user} (single use, valid {hours} h; append it to the gateway's address):")
    out.print(f"/ui/reset?token={link.token}", markup=False, highlight=False)


@admin_cli.command("workspaces")
def workspaces(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List workspaces."""
    table = Table("id", "name", "status", "priority", "models", "created")
    for ws in operator(config, data_dir).run(lambda identity: identity.workspaces.list(OPERATOR)):
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
    op = operator(config, data_dir)
    ws = op.run(lambda identity: identity.workspaces.update(OPERATOR, ident, changes))
    status = "disabled" if ws.disabled_at else "active"
    out.print(f"Workspace {ws.name} ({ws.id}) is {status}.", markup=False)
    op.told()


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
    changes.update(models_change(models, all_models))
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
