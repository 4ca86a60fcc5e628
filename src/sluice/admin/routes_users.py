"""``/admin/v1/users`` and ``/admin/v1/workspaces``: accounts, tenants and who belongs where.

Gateway admins see and change everything; a workspace owner sees the users of their own workspace and manages its
memberships (never granting a role above their own); everyone else sees only their own workspace. An id from
another workspace answers 404, exactly like an id that does not exist. The rules are the identity services'
(:class:`~sluice.identity.user_service.UserService`, :class:`~sluice.identity.workspace_service.WorkspaceService`),
shared with the CLI; these routes parse, declare the least role, call them and render.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sluice.admin.policy import Caller, requires
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
from sluice.identity.user_service import ResetLink
from sluice.identity.workspace_service import Member
from sluice.store.models import Workspace

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


def reset_out(link: ResetLink) -> PasswordResetCreated:
    return PasswordResetCreated(token=link.token, ui_path=f"/ui/reset?token={link.token}", expires_at=link.expires_at)


def member_out(member: Member) -> MembershipOut:
    return MembershipOut(user_id=member.user_id, workspace_id=member.workspace_id, role=member.role, email=member.email)


# --- users ----------------------------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], tags=["users"])
async def list_users(
    caller: Owner,
    status: Annotated[str | None, Query(max_length=16)] = None,
    workspace_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[UserOut]:
    return [user_out(u) for u in await caller.identity.users.list(caller, status, workspace_id)]


@router.post("/users", status_code=201, response_model=UserCreated, tags=["users"])
async def create_user_account(body: UserCreate, caller: Admin) -> UserCreated:
    """Make an active account in a workspace (how people get in while registration is closed)."""
    user, reset = await caller.identity.users.create(
        caller,
        body.email,
        password=body.password,
        workspace_id=body.workspace_id,
        role=body.role,
        priority=body.priority,
    )
    return UserCreated(
        user=user_out(user),
        workspace_id=body.workspace_id,
        role=body.role,
        password_reset=reset_out(reset) if reset is not None else None,
    )


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
async def get_user(user_id: str, caller: Owner) -> UserOut:
    return user_out(await caller.identity.users.get(caller, user_id))


@router.post("/users/{user_id}/approve", response_model=UserOut, tags=["users"])
async def approve_user(user_id: str, caller: Admin) -> UserOut:
    return user_out(await caller.identity.users.set_status(caller, user_id, "active", "user.approve"))


@router.post("/users/{user_id}/disable", response_model=UserOut, tags=["users"])
async def disable_user(user_id: str, caller: Admin) -> UserOut:
    return user_out(await caller.identity.users.set_status(caller, user_id, "disabled", "user.disable"))


@router.post("/users/{user_id}/enable", response_model=UserOut, tags=["users"])
async def enable_user(user_id: str, caller: Admin) -> UserOut:
    return user_out(await caller.identity.users.set_status(caller, user_id, "active", "user.enable"))


@router.post("/users/{user_id}/password-reset", status_code=201, response_model=PasswordResetCreated, tags=["users"])
async def create_password_reset(user_id: str, caller: Admin) -> PasswordResetCreated:
    """A single-use link (valid 24 h) the user opens to set a new password; shown once."""
    return reset_out(await caller.identity.users.reset_link(caller, user_id))


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
async def patch_user(user_id: str, body: UserUpdate, caller: Admin) -> UserOut:
    changes = body.model_dump(include=body.model_fields_set)
    return user_out(await caller.identity.users.update(caller, user_id, changes))


# --- workspaces -----------------------------------------------------------------------------------------------


@router.get("/workspaces", response_model=list[WorkspaceOut], tags=["workspaces"])
async def list_workspaces(caller: Viewer) -> list[WorkspaceOut]:
    return [workspace_out(w) for w in await caller.identity.workspaces.list(caller)]


@router.post("/workspaces", status_code=201, response_model=WorkspaceOut, tags=["workspaces"])
async def create_workspace(body: WorkspaceCreate, caller: Admin) -> WorkspaceOut:
    ws = await caller.identity.workspaces.create(
        caller, body.name, priority=body.priority, allowed_models=body.allowed_models
    )
    return workspace_out(ws)


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceOut, tags=["workspaces"])
async def get_workspace(workspace_id: str, caller: Viewer) -> WorkspaceOut:
    return workspace_out(await caller.identity.workspaces.get(caller, workspace_id))


@router.patch("/workspaces/{workspace_id}", response_model=WorkspaceOut, tags=["workspaces"])
async def patch_workspace(workspace_id: str, body: WorkspaceUpdate, caller: Admin) -> WorkspaceOut:
    changes = body.model_dump(include=body.model_fields_set)
    return workspace_out(await caller.identity.workspaces.update(caller, workspace_id, changes))


# --- memberships ----------------------------------------------------------------------------------------------


@router.get("/workspaces/{workspace_id}/members", response_model=list[MembershipOut], tags=["workspaces"])
async def list_members(workspace_id: str, caller: Owner) -> list[MembershipOut]:
    return [member_out(m) for m in await caller.identity.workspaces.members(caller, workspace_id)]


@router.put("/workspaces/{workspace_id}/members/{user_id}", response_model=MembershipOut, tags=["workspaces"])
async def put_member(workspace_id: str, user_id: str, body: MembershipPut, caller: Owner) -> MembershipOut:
    return member_out(await caller.identity.workspaces.put_member(caller, workspace_id, user_id, body.role))


@router.delete("/workspaces/{workspace_id}/members/{user_id}", status_code=204, tags=["workspaces"])
async def remove_member(workspace_id: str, user_id: str, caller: Owner) -> None:
    await caller.identity.workspaces.remove_member(caller, workspace_id, user_id)
