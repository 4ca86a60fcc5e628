"""``/admin/v1/users`` and ``/admin/v1/workspaces``: accounts, tenants and who belongs where.

Gateway admins see and change everything; a workspace owner sees the users of their own workspace and manages its
memberships (never granting a role above their own); everyone else sees only their own workspace. An id from
another workspace answers 404, exactly like an id that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.admin.policy import Caller, check_grant, requires
from sluice.admin.routes_auth import user_out
from sluice.admin.schemas import (
    MembershipOut,
    MembershipPut,
    PasswordResetCreated,
    UserCreate,
    UserCreated,
    UserOut,
    UserUpdate,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspaceUpdate,
)
from sluice.errors import InvalidRequest, NotFound
from sluice.identity.accounts import Conflict, create_reset
from sluice.identity.audit import audit
from sluice.identity.changes import create_user, set_user_status, update_user, update_workspace, workspace_image
from sluice.store.models import Membership, User, Workspace

router = APIRouter()

Admin = Annotated[Caller, Depends(requires("admin"))]
Owner = Annotated[Caller, Depends(requires("owner"))]
Viewer = Annotated[Caller, Depends(requires("viewer"))]


def workspace_out(ws: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        id=ws.id,
        name=ws.name,
        disabled=ws.disabled_at is not None,
        priority=ws.priority,
        allowed_models=ws.allowed_models,
        created_at=ws.created_at,
    )


async def visible_user(session: AsyncSession, caller: Caller, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is not None and not caller.is_admin:
        member = await session.get(Membership, (user_id, caller.principal.workspace_id or ""))
        if member is None:
            user = None
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user


async def visible_workspace(session: AsyncSession, caller: Caller, workspace_id: str) -> Workspace:
    ws = await session.get(Workspace, workspace_id)
    if ws is None or not caller.sees_workspace(ws.id):
        raise NotFound("No such workspace.", code="workspace_not_found")
    return ws


# --- users ----------------------------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], tags=["users"])
async def list_users(
    caller: Owner,
    status: Annotated[str | None, Query(max_length=16)] = None,
    workspace_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[UserOut]:
    scope = caller.workspace_scope(workspace_id)
    query = select(User).order_by(User.created_at)
    if scope is not None:
        query = query.join(Membership, Membership.user_id == User.id).where(Membership.workspace_id == scope)
    if status is not None:
        query = query.where(User.status == status)
    async with caller.services.db.session() as session:
        return [user_out(u) for u in (await session.execute(query.limit(10_000))).scalars()]


@router.post("/users", status_code=201, response_model=UserCreated, tags=["users"])
async def create_user_account(body: UserCreate, caller: Admin) -> UserCreated:
    """Make an active account in a workspace (how people get in while registration is closed)."""
    async with caller.services.db.session() as session:
        user = await create_user(
            session,
            caller.actor,
            body.email,
            password=body.password,
            workspace_id=body.workspace_id,
            role=body.role,
            priority=body.priority,
        )
        reset = None
        if body.password is None:
            token, expires = await create_reset(session, user.id, caller.actor)
            reset = PasswordResetCreated(token=token, ui_path=f"/ui/reset?token={token}", expires_at=expires)
    return UserCreated(user=user_out(user), workspace_id=body.workspace_id, role=body.role, password_reset=reset)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
async def get_user(user_id: str, caller: Owner) -> UserOut:
    async with caller.services.db.session() as session:
        return user_out(await visible_user(session, caller, user_id))


async def _set_status(caller: Caller, user_id: str, status: str, action: str) -> UserOut:
    async with caller.services.db.session() as session:
        user = await visible_user(session, caller, user_id)
        await set_user_status(session, caller.actor, user, status, action)
    await caller.services.invalidation.publish("user", user.id)
    return user_out(user)


@router.post("/users/{user_id}/approve", response_model=UserOut, tags=["users"])
async def approve_user(user_id: str, caller: Admin) -> UserOut:
    return await _set_status(caller, user_id, "active", "user.approve")


@router.post("/users/{user_id}/disable", response_model=UserOut, tags=["users"])
async def disable_user(user_id: str, caller: Admin) -> UserOut:
    if user_id == caller.principal.user_id:
        raise InvalidRequest("You cannot disable yourself.", code="self_disable")
    return await _set_status(caller, user_id, "disabled", "user.disable")


@router.post("/users/{user_id}/enable", response_model=UserOut, tags=["users"])
async def enable_user(user_id: str, caller: Admin) -> UserOut:
    return await _set_status(caller, user_id, "active", "user.enable")


@router.post("/users/{user_id}/password-reset", status_code=201, response_model=PasswordResetCreated, tags=["users"])
async def create_password_reset(user_id: str, caller: Admin) -> PasswordResetCreated:
    """A single-use link (valid 24 h) the user opens to set a new password; shown once."""
    async with caller.services.db.session() as session:
        user = await visible_user(session, caller, user_id)
        token, expires = await create_reset(session, user.id, caller.actor)
    return PasswordResetCreated(token=token, ui_path=f"/ui/reset?token={token}", expires_at=expires)


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
async def patch_user(user_id: str, body: UserUpdate, caller: Admin) -> UserOut:
    async with caller.services.db.session() as session:
        user = await visible_user(session, caller, user_id)
        update_user(session, caller.actor, user, body.model_dump(include=body.model_fields_set))
    await caller.services.invalidation.publish("user", user.id)
    return user_out(user)


# --- workspaces -----------------------------------------------------------------------------------------------


@router.get("/workspaces", response_model=list[WorkspaceOut], tags=["workspaces"])
async def list_workspaces(caller: Viewer) -> list[WorkspaceOut]:
    query = select(Workspace).order_by(Workspace.created_at)
    if not caller.is_admin:
        query = query.where(Workspace.id == (caller.principal.workspace_id or ""))
    async with caller.services.db.session() as session:
        return [workspace_out(w) for w in (await session.execute(query)).scalars()]


@router.post("/workspaces", status_code=201, response_model=WorkspaceOut, tags=["workspaces"])
async def create_workspace(body: WorkspaceCreate, caller: Admin) -> WorkspaceOut:
    try:
        async with caller.services.db.session() as session:
            ws = Workspace(name=body.name, priority=body.priority, allowed_models=body.allowed_models)
            session.add(ws)
            await session.flush()
            audit(
                session,
                caller.actor,
                "workspace.create",
                "workspace",
                ws.id,
                workspace_id=ws.id,
                after=workspace_image(ws),
            )
    except IntegrityError:
        raise Conflict("A workspace with this name already exists.", code="name_taken") from None
    return workspace_out(ws)


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceOut, tags=["workspaces"])
async def get_workspace(workspace_id: str, caller: Viewer) -> WorkspaceOut:
    async with caller.services.db.session() as session:
        return workspace_out(await visible_workspace(session, caller, workspace_id))


@router.patch("/workspaces/{workspace_id}", response_model=WorkspaceOut, tags=["workspaces"])
async def patch_workspace(workspace_id: str, body: WorkspaceUpdate, caller: Admin) -> WorkspaceOut:
    try:
        async with caller.services.db.session() as session:
            ws = await visible_workspace(session, caller, workspace_id)
            await update_workspace(session, caller.actor, ws, body.model_dump(include=body.model_fields_set))
    except IntegrityError:
        raise Conflict("A workspace with this name already exists.", code="name_taken") from None
    await caller.services.invalidation.publish("workspace", ws.id)
    return workspace_out(ws)


# --- memberships ----------------------------------------------------------------------------------------------


@router.get("/workspaces/{workspace_id}/members", response_model=list[MembershipOut], tags=["workspaces"])
async def list_members(workspace_id: str, caller: Owner) -> list[MembershipOut]:
    async with caller.services.db.session() as session:
        ws = await visible_workspace(session, caller, workspace_id)
        rows = await session.execute(
            select(Membership, User.email)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == ws.id)
            .order_by(Membership.created_at)
        )
        return [MembershipOut(user_id=m.user_id, workspace_id=m.workspace_id, role=m.role, email=e) for m, e in rows]


@router.put("/workspaces/{workspace_id}/members/{user_id}", response_model=MembershipOut, tags=["workspaces"])
async def put_member(workspace_id: str, user_id: str, body: MembershipPut, caller: Owner) -> MembershipOut:
    check_grant(caller.principal, role=body.role)
    async with caller.services.db.session() as session:
        ws = await visible_workspace(session, caller, workspace_id)
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.", code="user_not_found")
        if not caller.is_admin and await session.get(Membership, (user.id, ws.id)) is None:
            raise NotFound("No such user.", code="user_not_found")  # owners manage members, they do not recruit
        member = await session.get(Membership, (user.id, ws.id))
        before = {"role": member.role} if member else None
        if member is None:
            member = Membership(user_id=user.id, workspace_id=ws.id, role=body.role)
            session.add(member)
        else:
            member.role = body.role
        audit(
            session,
            caller.actor,
            "membership.put",
            "membership",
            f"{user.id}@{ws.id}",
            workspace_id=ws.id,
            before=before,
            after={"role": body.role},
        )
    await caller.services.invalidation.publish("user", user.id)
    return MembershipOut(user_id=user.id, workspace_id=ws.id, role=body.role, email=user.email)


@router.delete("/workspaces/{workspace_id}/members/{user_id}", status_code=204, tags=["workspaces"])
async def remove_member(workspace_id: str, user_id: str, caller: Owner) -> None:
    async with caller.services.db.session() as session:
        ws = await visible_workspace(session, caller, workspace_id)
        member = await session.get(Membership, (user_id, ws.id))
        if member is None:
            raise NotFound("No such member.", code="member_not_found")
        check_grant(caller.principal, role=member.role)  # an owner cannot remove someone who outranks them
        await session.delete(member)
        audit(
            session,
            caller.actor,
            "membership.delete",
            "membership",
            f"{user_id}@{ws.id}",
            workspace_id=ws.id,
            before={"role": member.role},
        )
    await caller.services.invalidation.publish("user", user_id)
