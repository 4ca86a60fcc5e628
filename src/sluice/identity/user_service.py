"""Accounts as admins and operators manage them: create, approve, disable, enable, change, hand a reset link.

Who may call each operation is the caller's declared role (the admin API's ``requires``, or the operator at the
CLI); what they may see is decided here: anyone but a gateway admin sees the users of their own workspace only, and
a user out of sight is not found, exactly like one that does not exist. Every change is audited and announced, so
each replica drops the user's cached sessions (and the keys that follow the user's status) at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from sluice.config import AuthConfig
from sluice.errors import Conflict, InvalidRequest, NotFound
from sluice.identity.accounts import create_reset, normalise_email
from sluice.identity.audit import Actor, audit
from sluice.identity.grants import Authority
from sluice.identity.images import user_image
from sluice.identity.invalidation import Announce
from sluice.identity.passwords import hash_password, password_problem
from sluice.identity.user_repository import UserRepository
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, User

log = structlog.get_logger("sluice.identity")

LIST_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ResetLink:
    token: str  # shown once: the user opens /ui/reset?token=<token>
    expires_at: datetime


class UserService:
    def __init__(self, db: Database, announce: Announce) -> None:
        self.db = db
        self.announce = announce

    async def list(self, by: Authority, status: str | None = None, workspace_id: str | None = None) -> Sequence[User]:
        """Users oldest first: a gateway admin's every user (or one workspace's), anyone else's own workspace's."""
        async with self.db.session() as session:
            return await UserRepository(session).list(
                status=status, workspace_id=by.workspace_scope(workspace_id), limit=LIST_LIMIT
            )

    async def get(self, by: Authority, user_id: str) -> User:
        async with self.db.session() as session:
            return await _visible(UserRepository(session), by, user_id)

    async def find(self, ident: str) -> User:
        """A user by id or email (the operator's way of naming one)."""
        async with self.db.session() as session:
            user = await UserRepository(session).by_id_or_email(ident)
        if user is None:
            raise NotFound(f"No user with id or email {ident!r}.", code="user_not_found")
        return user

    async def create(
        self,
        by: Authority,
        email: str,
        *,
        password: str | None,
        workspace_id: str,
        role: str,
        priority: str | None = None,
    ) -> tuple[User, ResetLink | None]:
        """An active account in a workspace (the way in while registration is ``closed``).

        Without a password the account gets an unusable random one, and a reset link to hand to the user.
        """
        email = normalise_email(email)
        if password is not None and (problem := password_problem(password)):
            raise InvalidRequest(problem, param="password")
        async with self.db.session() as session:
            users = UserRepository(session)
            if await users.by_email(email) is not None:
                raise Conflict("An account with this email already exists.", code="email_taken")
            if not await WorkspaceRepository(session).exists(workspace_id):
                raise NotFound("No such workspace.", code="workspace_not_found")
            secret = password if password is not None else secrets.token_urlsafe(32)
            user = await users.add(
                User(email=email, password_hash=hash_password(secret), status="active", priority=priority)
            )
            users.add_membership(user.id, workspace_id, role)
            after = {**user_image(user), "workspace_id": workspace_id, "role": role}
            audit(session, by.actor, "user.create", "user", user.id, workspace_id=workspace_id, after=after)
            reset = ResetLink(*create_reset(users, user.id, by.actor)) if password is None else None
        return user, reset

    async def set_status(self, by: Authority, user_id: str, status: str, action: str) -> User:
        """Approve, enable or disable (nobody disables themselves); disabling also ends every session."""
        if status == "disabled" and user_id == by.principal.user_id:
            raise InvalidRequest("You cannot disable yourself.", code="self_disable")
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await _visible(users, by, user_id)
            before = user_image(user)
            user.status = status
            if status == "disabled":
                await users.end_sessions(user.id)
            audit(session, by.actor, action, "user", user.id, before=before, after=user_image(user))
        await self.announce("user", user.id)
        return user

    async def update(self, by: Authority, user_id: str, changes: Mapping[str, Any]) -> User:
        """Gateway-admin flag, priority class (``priority: None`` clears it: the workspace's class applies) and
        whether the user may sign in with a password (False: single sign-on only)."""
        async with self.db.session() as session:
            user = await _visible(UserRepository(session), by, user_id)
            before = user_image(user)
            if changes.get("is_admin") is not None:
                user.is_admin = bool(changes["is_admin"])
            if "priority" in changes:
                user.priority = changes["priority"]
            if changes.get("password_login") is not None:
                user.password_login = bool(changes["password_login"])
            audit(session, by.actor, "user.update", "user", user.id, before=before, after=user_image(user))
        await self.announce("user", user.id)
        return user

    async def reset_link(self, by: Authority, user_id: str) -> ResetLink:
        """A single-use link (valid 24 h) the user opens to set a new password."""
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await _visible(users, by, user_id)
            return ResetLink(*create_reset(users, user.id, by.actor))

    async def create_admin(self, actor: Actor, email: str, password: str) -> User:
        """Create a gateway admin (or promote an existing account with that email and set its password)."""
        email = normalise_email(email)
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(problem, param="password")
        async with self.db.session() as session:
            users = UserRepository(session)
            user = await users.by_email(email)
            before = user_image(user) if user else None
            if user is None:
                user = await users.add(
                    User(email=email, password_hash=hash_password(password), status="active", is_admin=True)
                )
                users.add_membership(user.id, DEFAULT_WORKSPACE_ID, "owner")
            else:
                user.is_admin, user.status, user.password_hash = True, "active", hash_password(password)
            audit(session, actor, "user.create_admin", "user", user.id, before=before, after=user_image(user))
        return user

    async def ensure_first_admin(self, config: AuthConfig) -> None:
        """``auth.admin_email`` + ``auth.admin_password``: create that admin on first start if there is no admin."""
        if not config.admin_email or config.admin_password is None:
            return
        async with self.db.session() as session:
            if await UserRepository(session).any_admin():
                return
        await self.create_admin(Actor("bootstrap"), config.admin_email, config.admin_password.get_secret_value())
        log.info("created the first admin from the environment")


async def _visible(users: UserRepository, by: Authority, user_id: str) -> User:
    """The user, if ``by`` may see them (a gateway admin, or a member of a workspace the user belongs to)."""
    user = await users.get(user_id)
    if (
        user is not None
        and not by.is_admin
        and await users.membership(user_id, by.principal.workspace_id or "") is None
    ):
        user = None
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user
