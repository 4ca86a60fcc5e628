"""Workspaces (tenants) and who belongs to them with which role.

Gateway admins see and change every workspace; anyone else sees their own. A workspace owner manages its
memberships but never grants a role above their own, never removes someone who outranks them, and never recruits
(only users already in the workspace are theirs to change). A workspace out of sight is not found. Changes are
audited and announced: a disabled workspace's keys and sessions stop on every replica at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from sluice.errors import Conflict, InvalidRequest, NotFound
from sluice.identity.audit import audit
from sluice.identity.grants import Authority, check_grant
from sluice.identity.images import workspace_image
from sluice.identity.invalidation import Announce
from sluice.identity.user_repository import UserRepository
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.naming import require_name
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, Workspace
from sluice.store.types import utcnow

NAME_TAKEN = "A workspace with this name already exists."


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    workspace_id: str
    role: str
    email: str


class WorkspaceService:
    def __init__(self, db: Database, announce: Announce) -> None:
        self.db = db
        self.announce = announce

    async def get(self, by: Authority, workspace_id: str) -> Workspace:
        async with self.db.session() as session:
            return await _visible(WorkspaceRepository(session), by, workspace_id)

    async def create(
        self, by: Authority, name: str, *, priority: str | None = None, allowed_models: list[str] | None = None
    ) -> Workspace:
        require_name(name)
        try:
            async with self.db.session() as session:
                ws = await WorkspaceRepository(session).add(
                    Workspace(name=name, priority=priority, allowed_models=allowed_models)
                )
                audit(
                    session,
                    by.actor,
                    "workspace.create",
                    "workspace",
                    ws.id,
                    workspace_id=ws.id,
                    after=workspace_image(ws),
                )
        except IntegrityError:
            raise Conflict(NAME_TAKEN, code="name_taken") from None
        return ws

    async def update(self, by: Authority, workspace_id: str, changes: Mapping[str, Any]) -> Workspace:
        """Name, disabled, priority class, allowed models (``changes`` holds only the fields to change)."""
        if changes.get("name") is not None:
            require_name(changes["name"])
        try:
            async with self.db.session() as session:
                workspaces = WorkspaceRepository(session)
                ws = await _visible(workspaces, by, workspace_id)
                before = workspace_image(ws)
                _apply(ws, changes)
                await workspaces.flush()
                audit(
                    session,
                    by.actor,
                    "workspace.update",
                    "workspace",
                    ws.id,
                    workspace_id=ws.id,
                    before=before,
                    after=workspace_image(ws),
                )
        except IntegrityError:
            raise Conflict(NAME_TAKEN, code="name_taken") from None
        await self.announce("workspace", ws.id)
        return ws

    async def members(self, by: Authority, workspace_id: str) -> Sequence[Member]:
        async with self.db.session() as session:
            ws = await _visible(WorkspaceRepository(session), by, workspace_id)
            rows = await UserRepository(session).members_of(ws.id)
        return [Member(m.user_id, m.workspace_id, m.role, email) for m, email in rows]

    async def put_member(self, by: Authority, workspace_id: str, user_id: str, role: str) -> Member:
        """Put a user in a workspace with a role, or change their role there."""
        check_grant(by.principal, role=role)
        async with self.db.session() as session:
            ws = await _visible(WorkspaceRepository(session), by, workspace_id)
            users = UserRepository(session)
            user = await users.get(user_id)
            member = await users.membership(user_id, ws.id) if user is not None else None
            if user is None or (member is None and not by.is_admin):  # owners manage members, they do not recruit
                raise NotFound("No such user.", code="user_not_found")
            before = {"role": member.role} if member else None
            if member is None:
                users.add_membership(user.id, ws.id, role)
            else:
                member.role = role
            audit(
                session,
                by.actor,
                "membership.put",
                "membership",
                f"{user.id}@{ws.id}",
                workspace_id=ws.id,
                before=before,
                after={"role": role},
            )
        await self.announce("user", user.id)
        return Member(user.id, ws.id, role, user.email)

    async def remove_member(self, by: Authority, workspace_id: str, user_id: str) -> None:
        async with self.db.session() as session:
            ws = await _visible(WorkspaceRepository(session), by, workspace_id)
            users = UserRepository(session)
            member = await users.membership(user_id, ws.id)
            if member is None:
                raise NotFound("No such member.", code="member_not_found")
            check_grant(by.principal, role=member.role)  # an owner cannot remove someone who outranks them
            await users.remove_membership(member)
            audit(
                session,
                by.actor,
                "membership.delete",
                "membership",
                f"{user_id}@{ws.id}",
                workspace_id=ws.id,
                before={"role": member.role},
            )
        await self.announce("user", user_id)

    # Last: within the class body, ``list`` names this method from here on, not the built-in type.
    async def list(self, by: Authority) -> Sequence[Workspace]:
        async with self.db.session() as session:
            return await WorkspaceRepository(session).list(None if by.is_admin else by.principal.workspace_id or "")


def _apply(ws: Workspace, changes: Mapping[str, Any]) -> None:
    if changes.get("name") is not None:
        ws.name = changes["name"]
    if changes.get("disabled") is not None:
        if changes["disabled"] and ws.id == DEFAULT_WORKSPACE_ID:
            raise InvalidRequest("The default workspace cannot be disabled.", param="disabled")
        ws.disabled_at = (ws.disabled_at or utcnow()) if changes["disabled"] else None
    if "priority" in changes:
        ws.priority = changes["priority"]
    if "allowed_models" in changes:
        ws.allowed_models = changes["allowed_models"]


async def _visible(workspaces: WorkspaceRepository, by: Authority, workspace_id: str) -> Workspace:
    ws = await workspaces.get(workspace_id)
    if ws is None or not by.sees_workspace(ws.id):
        raise NotFound("No such workspace.", code="workspace_not_found")
    return ws
