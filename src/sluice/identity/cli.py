"""``sluice keys …``, ``sluice admin …`` and ``sluice invites …``: the admin API's identity operations offline.

The command groups live here with the first admin, user status, workspaces' creation, the registration mode and
invitations; :mod:`cli_keys`, :mod:`cli_users`, :mod:`cli_access` and :mod:`cli_settings` add the rest.

The commands parse their options and call the same services as the admin API (:mod:`sluice.identity.service`), as
the operator (:data:`sluice.identity.grants.OPERATOR`, who holds every grant), so each rule and audit row is the
API's. The CLI is not the way users create their own keys (they use the API or the UI, within their grants);
``sluice keys create --user`` makes one for them. When ``redis_url`` is configured, running gateways are told of a
change at once; otherwise they notice within their cache lifetimes (``key_cache.ttl_seconds``,
``auth.user_cache_ttl_seconds``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.config import Settings
from sluice.errors import SluiceError
from sluice.identity.audit import CLI_ACTOR
from sluice.identity.grants import OPERATOR, WORKSPACE_ROLES
from sluice.identity.invalidation import ReplicaNotice
from sluice.identity.invite_service import NewInvite
from sluice.identity.service import IdentityService
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, RegistrationToken, User
from sluice.store.types import utcnow

T = TypeVar("T")

keys_cli = typer.Typer(help="Create, list, edit and revoke API keys.", no_args_is_help=True)
admin_cli = typer.Typer(help="Users, workspaces and gateway settings.", no_args_is_help=True)
invites_cli = typer.Typer(help="Registration tokens (invitations).", no_args_is_help=True)

Role = Literal["owner", "member", "viewer"]
UserArg = Annotated[str, typer.Argument(help="Id or email.")]


def fail(exc: SluiceError | ValueError) -> typer.Exit:
    """Print the error's message (never a traceback) for exit status 1."""
    err.print(getattr(exc, "message", str(exc)), markup=False)
    return typer.Exit(1)


def usage(message: str) -> typer.Exit:
    """A wrong combination of options: exit status 2, like typer's own usage errors."""
    err.print(message, markup=False)
    return typer.Exit(2)


class Operator:
    """The CLI's way to the identity service: the configured database, changes announced to running gateways."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notice = ReplicaNotice(settings.redis_url.get_secret_value() if settings.redis_url else None)

    def run(self, work: Callable[[IdentityService], Awaitable[T]]) -> T:
        """Run ``work``; a refused change prints its reason for exit status 1."""
        return self.run_db(lambda _db, identity: work(identity))

    def run_db(self, work: Callable[[Database, IdentityService], Awaitable[T]]) -> T:
        """The same, for work that builds another room's service on the database too."""
        try:
            return with_db(self.settings, lambda db: work(db, IdentityService(db, self.settings, self.notice.publish)))
        except SluiceError as exc:
            raise fail(exc) from None

    def told(self) -> None:
        """After the command's own output: say so if running gateways were told of the change."""
        if self.notice.sent:
            out.print("Running gateways were notified.")


def operator(config: ConfigOpt, data_dir: DataDirOpt) -> Operator:
    return Operator(load(config, data_dir=data_dir))


# --- admin: users, workspaces, settings -------------------------------------------------------------------------


@admin_cli.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="The admin's email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted for when not given.")
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a gateway admin (or make an existing user one, with this password)."""
    user = operator(config, data_dir).run(lambda identity: identity.users.create_admin(CLI_ACTOR, email, password))
    out.print(f"Admin {user.email} ({user.id}) is ready; log in at /admin/v1/auth/login.", markup=False)


@admin_cli.command("users")
def admin_users(
    status: Annotated[str | None, typer.Option(help="Only users with this status: active, pending, disabled.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List users."""
    users = operator(config, data_dir).run(lambda identity: identity.users.list(OPERATOR, status or None))
    table = Table("id", "email", "status", "admin", "priority", "created")
    for user in users:
        table.add_row(
            user.id,
            user.email,
            user.status,
            "yes" if user.is_admin else "",
            user.priority or "-",
            user.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def _set_user_status(ident: str, status: str, action: str, config: ConfigOpt, data_dir: DataDirOpt) -> None:
    op = operator(config, data_dir)

    async def work(identity: IdentityService) -> User:
        found = await identity.users.find(ident)
        return await identity.users.set_status(OPERATOR, found.id, status, action)

    user = op.run(work)
    out.print(f"User {user.email} is now {status}.", markup=False)
    op.told()


@admin_cli.command("approve")
def admin_approve(user: UserArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Approve a pending user."""
    _set_user_status(user, "active", "user.approve", config, data_dir)


@admin_cli.command("disable")
def admin_disable(user: UserArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Disable a user: their sessions and keys stop working."""
    _set_user_status(user, "disabled", "user.disable", config, data_dir)


@admin_cli.command("enable")
def admin_enable(user: UserArg, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enable a disabled user again."""
    _set_user_status(user, "active", "user.enable", config, data_dir)


@admin_cli.command("workspace-create")
def workspace_create(
    name: Annotated[str, typer.Argument(help="A unique name.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Create a workspace (tenant)."""
    ws = operator(config, data_dir).run(lambda identity: identity.workspaces.create(OPERATOR, name))
    out.print(f"Created workspace {ws.name} ({ws.id}).", markup=False)


@admin_cli.command("registration")
def admin_registration(
    mode: Annotated[Literal["closed", "invite", "approval"], typer.Argument(help="closed, invite or approval")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set the registration mode (overrides the configuration file's)."""
    operator(config, data_dir).run(lambda identity: identity.access.update_settings(OPERATOR, {"registration": mode}))
    out.print(f"Registration is now {mode}.")
    if mode == "closed":
        out.print("Nobody can sign up, not even with an invitation; admins create accounts.")


# --- invites --------------------------------------------------------------------------------------------------


@invites_cli.command("create")
def invites_create(
    workspace: Annotated[str | None, typer.Option(help="Workspace the new user joins (default: default).")] = None,
    role: Annotated[str, typer.Option(help="Their role there: owner, member or viewer.")] = "member",
    hours: Annotated[
        float | None, typer.Option(help="Valid for this many hours (default auth.invite_ttl_hours).")
    ] = None,
    note: Annotated[str, typer.Option(help="A note for yourself.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a single-use registration token; it is shown once."""
    op = operator(config, data_dir)
    if role not in WORKSPACE_ROLES:
        raise usage("The role must be owner, member or viewer.")

    async def work(identity: IdentityService) -> tuple[NewInvite, str]:
        new = await identity.invites.create(OPERATOR, workspace_id=workspace, role=role, hours=hours, note=note)
        return new, (await identity.access.gateway_settings()).registration

    new, mode = op.run(work)
    out.print(f"Invitation {new.invite.id}, valid until {new.invite.expires_at:%Y-%m-%d %H:%M} UTC. Copy it now:")
    out.print(new.token, markup=False, highlight=False)
    if mode == "closed":
        err.print("Registration is closed: the invitation works once it is 'invite' or 'approval'.", markup=False)


@invites_cli.command("list")
def invites_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List invitations (never the tokens)."""
    invites = operator(config, data_dir).run(lambda identity: identity.invites.list(OPERATOR))
    now = utcnow()
    table = Table("id", "workspace", "role", "expires", "status", "note")
    for invite in invites:
        table.add_row(
            invite.id,
            invite.workspace_id or DEFAULT_WORKSPACE_ID,
            invite.role,
            invite.expires_at.strftime("%Y-%m-%d %H:%M"),
            _invite_status(invite, now),
            invite.note,
        )
    out.print(table)


def _invite_status(invite: RegistrationToken, now: datetime) -> str:
    if invite.used_at:
        return "used"
    if invite.revoked_at:
        return "revoked"
    return "expired" if invite.expires_at <= now else "open"


@invites_cli.command("revoke")
def invites_revoke(
    ident: Annotated[str, typer.Argument(help="The invitation's id.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke an unused invitation."""
    operator(config, data_dir).run(lambda identity: identity.invites.revoke(OPERATOR, ident))
    out.print(f"Revoked invitation {ident}.", markup=False)
