"""``sluice keys …``, ``sluice admin …`` and ``sluice invites …``: the admin API's identity operations offline.

The command groups live here with the first admin, user status, workspaces' creation, the registration mode and
invitations; :mod:`cli_keys`, :mod:`cli_users`, :mod:`cli_access` and :mod:`cli_settings` add the rest.

The CLI is the operator's tool: it works on the database directly, without a principal, so it is not the way users
create their own keys (they use the API or the UI, within their grants); ``sluice keys create --user`` makes one
for them. Changes are audited with the actor ``cli``, with the same actions and images as the API's. When
``redis_url`` is configured, running gateways are told at once; otherwise they notice within their cache lifetimes
(``key_cache.ttl_seconds``, ``auth.user_cache_ttl_seconds``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sluice.cli_common import ConfigOpt, DataDirOpt, err, load, out, with_db
from sluice.config import Settings
from sluice.errors import NotFound, SluiceError
from sluice.identity.accounts import hash_invite, invite_expiry, new_invite_token
from sluice.identity.audit import CLI_ACTOR, audit
from sluice.identity.bootstrap import create_admin
from sluice.identity.changes import invite_image, set_user_status, workspace_image
from sluice.identity.invalidation import notify_replicas
from sluice.identity.key_service import find_user
from sluice.identity.runtime_settings import registration_mode, set_registration_mode
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, RegistrationToken, User, Workspace
from sluice.store.types import utcnow

keys_cli = typer.Typer(help="Create, list, edit and revoke API keys.", no_args_is_help=True)
admin_cli = typer.Typer(help="Users, workspaces and gateway settings.", no_args_is_help=True)
invites_cli = typer.Typer(help="Registration tokens (invitations).", no_args_is_help=True)

Role = Literal["owner", "member", "viewer"]


def fail(exc: SluiceError | ValueError) -> typer.Exit:
    """Print the error's message (never a traceback) for exit status 1."""
    err.print(getattr(exc, "message", str(exc)), markup=False)
    return typer.Exit(1)


def notify(settings: Settings, kind: str, ident: str | None = None) -> None:
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    if asyncio.run(notify_replicas(url, kind, ident)):
        out.print("Running gateways were notified.")


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
    settings = load(config, data_dir=data_dir)
    try:
        user = with_db(settings, lambda db: create_admin(db, email, password, CLI_ACTOR))
    except (SluiceError, ValueError) as exc:
        raise fail(exc) from None
    out.print(f"Admin {user.email} ({user.id}) is ready; log in at /admin/v1/auth/login.", markup=False)


@admin_cli.command("users")
def admin_users(
    status: Annotated[str | None, typer.Option(help="Only users with this status: active, pending, disabled.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List users."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> list[User]:
        query = select(User).order_by(User.created_at)
        if status:
            query = query.where(User.status == status)
        async with db.session() as session:
            return list((await session.execute(query)).scalars())

    table = Table("id", "email", "status", "admin", "priority", "created")
    for user in with_db(settings, work):
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
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> User:
        found = await find_user(db, ident)
        async with db.session() as session:
            user = await session.get(User, found.id)
            if user is None:
                raise NotFound(f"No user {ident!r}.")
            await set_user_status(session, CLI_ACTOR, user, status, action)
        return user

    try:
        user = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    out.print(f"User {user.email} is now {status}.", markup=False)
    notify(settings, "user", user.id)


@admin_cli.command("approve")
def admin_approve(
    user: Annotated[str, typer.Argument(help="Id or email.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Approve a pending user."""
    _set_user_status(user, "active", "user.approve", config, data_dir)


@admin_cli.command("disable")
def admin_disable(
    user: Annotated[str, typer.Argument(help="Id or email.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Disable a user: their sessions and keys stop working."""
    _set_user_status(user, "disabled", "user.disable", config, data_dir)


@admin_cli.command("enable")
def admin_enable(
    user: Annotated[str, typer.Argument(help="Id or email.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Enable a disabled user again."""
    _set_user_status(user, "active", "user.enable", config, data_dir)


@admin_cli.command("workspace-create")
def workspace_create(
    name: Annotated[str, typer.Argument(help="A unique name.")], config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Create a workspace (tenant)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> Workspace:
        async with db.session() as session:
            ws = Workspace(name=name)
            session.add(ws)
            await session.flush()
            audit(
                session,
                CLI_ACTOR,
                "workspace.create",
                "workspace",
                ws.id,
                workspace_id=ws.id,
                after=workspace_image(ws),
            )
        return ws

    try:
        ws = with_db(settings, work)
    except IntegrityError:
        raise fail(ValueError(f"A workspace named {name!r} already exists.")) from None
    out.print(f"Created workspace {ws.name} ({ws.id}).", markup=False)


@admin_cli.command("registration")
def admin_registration(
    mode: Annotated[Literal["closed", "invite", "approval"], typer.Argument(help="closed, invite or approval")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set the registration mode (overrides the configuration file's)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> None:
        async with db.session() as session:
            before = await registration_mode(session, settings)
            await set_registration_mode(session, mode)
            audit(
                session,
                CLI_ACTOR,
                "settings.update",
                "settings",
                "registration",
                before={"registration": before},
                after={"registration": mode},
            )

    with_db(settings, work)
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
    settings = load(config, data_dir=data_dir)
    if role not in ("owner", "member", "viewer"):
        err.print("The role must be owner, member or viewer.")
        raise typer.Exit(2)
    token = new_invite_token()

    async def work(db: Database) -> tuple[RegistrationToken, str]:
        async with db.session() as session:
            if workspace is not None and await session.get(Workspace, workspace) is None:
                raise SluiceError(f"No workspace {workspace!r}.")
            invite = RegistrationToken(
                token_hash=hash_invite(token),
                workspace_id=workspace,
                role=role,
                note=note,
                created_by="cli",
                expires_at=invite_expiry(hours or settings.auth.invite_ttl_hours),
            )
            session.add(invite)
            await session.flush()
            audit(
                session,
                CLI_ACTOR,
                "invite.create",
                "invite",
                invite.id,
                workspace_id=workspace,
                after=invite_image(invite),
            )
            mode = await registration_mode(session, settings)
        return invite, mode

    try:
        invite, mode = with_db(settings, work)
    except SluiceError as exc:
        raise fail(exc) from None
    out.print(f"Invitation {invite.id}, valid until {invite.expires_at:%Y-%m-%d %H:%M} UTC. Copy it now:")
    out.print(token, markup=False, highlight=False)
    if mode == "closed":
        err.print("Registration is closed: the invitation works once it is 'invite' or 'approval'.", markup=False)


@invites_cli.command("list")
def invites_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List invitations (never the tokens)."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> list[RegistrationToken]:
        async with db.session() as session:
            query = select(RegistrationToken).order_by(RegistrationToken.created_at)
            return list((await session.execute(query)).scalars())

    now = utcnow()
    table = Table("id", "workspace", "role", "expires", "status", "note")
    for invite in with_db(settings, work):
        status = (
            "used"
            if invite.used_at
            else "revoked"
            if invite.revoked_at
            else "expired"
            if invite.expires_at <= now
            else "open"
        )
        table.add_row(
            invite.id,
            invite.workspace_id or DEFAULT_WORKSPACE_ID,
            invite.role,
            invite.expires_at.strftime("%Y-%m-%d %H:%M"),
            status,
            invite.note,
        )
    out.print(table)


@invites_cli.command("revoke")
def invites_revoke(
    ident: Annotated[str, typer.Argument(help="The invitation's id.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke an unused invitation."""
    settings = load(config, data_dir=data_dir)

    async def work(db: Database) -> bool:
        async with db.session() as session:
            invite = await session.get(RegistrationToken, ident)
            if invite is None:
                return False
            invite.revoked_at = invite.revoked_at or utcnow()
            audit(session, CLI_ACTOR, "invite.revoke", "invite", invite.id, workspace_id=invite.workspace_id)
        return True

    if not with_db(settings, work):
        err.print(f"No invitation {ident!r}.", markup=False)
        raise typer.Exit(1)
    out.print(f"Revoked invitation {ident}.", markup=False)
