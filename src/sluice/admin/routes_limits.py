"""``/admin/v1/limits…``: limits per key, user, workspace and role default, and a scope's budget spend.

Gateway admins set limits; owners read them for their workspace. Every read resolves a scope's limits exactly as
admission does (:meth:`PolicyTable.resolve`: stored, configured, role default, scope default), and says which of
those it came from. Changes are audited and apply to this replica at once and to the others within the
stored-settings refresh (15 s).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from sluice.accounting.prices import nanos_to_units, units_to_nanos
from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import Body
from sluice.config import LIMIT_ROLES
from sluice.errors import NotFound
from sluice.identity.audit import audit
from sluice.limits.periods import period_bounds
from sluice.limits.policy import ROLE_SCOPE, Limits, Scope, Source
from sluice.limits.repository import LimitRepository
from sluice.store.models import ApiKey, User, Workspace

router = APIRouter(tags=["limits"])

Owner = Annotated[Caller, Depends(requires("owner"))]
Admin = Annotated[Caller, Depends(requires("admin"))]
ScopeType = Literal["key", "user", "workspace"]
Role = Literal["admin", "owner", "member", "viewer"]  # config.LIMIT_ROLES, spelled as a type (a test keeps them equal)
RoleWorkspace = Annotated[
    str | None,
    Query(
        max_length=64,
        description="User scopes: the workspace whose role decides the role default (default: the caller's).",
    ),
]


class LimitsBody(Body):
    rpm: int | None = Field(None, ge=1, le=10**9)
    tpm: int | None = Field(None, ge=1, le=10**12)
    concurrent: int | None = Field(None, ge=1, le=10**6)
    budget: float | None = Field(None, ge=0, le=10**9)
    period: Literal["day", "week", "month"] = "month"

    def limits(self) -> Limits:
        budget = units_to_nanos(self.budget) if self.budget is not None else None
        return Limits(self.rpm, self.tpm, self.concurrent, budget, self.period)


class LimitsOut(BaseModel):
    scope: str
    id: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    budget: float | None
    period: str
    source: Source = Field(description="stored, config, role (a role default), default (the scope type's), none")
    role: str | None = Field(None, description="The role whose default applies to this scope, if any.")


class SpendOut(BaseModel):
    scope: str
    id: str
    period: str
    period_start: datetime
    period_end: datetime
    spent: float
    budget: float | None
    remaining: float | None
    source: Source


def _limits_out(scope: str, scope_id: str, limits: Limits, source: Source, role: str | None = None) -> LimitsOut:
    return LimitsOut(
        scope=scope,
        id=scope_id,
        rpm=limits.rpm,
        tpm=limits.tpm,
        concurrent=limits.concurrent,
        budget=nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None,
        period=limits.period,
        source=source,
        role=role,
    )


async def _store(caller: Caller, action: str, scope: str, scope_id: str, limits: Limits | None) -> bool:
    """Put (``limits``) or remove a stored policy, audited, and apply it here at once; False: nothing to remove."""
    services = caller.services
    async with services.db.session() as session:
        repo = LimitRepository(session)
        if limits is not None:
            await repo.put(scope, scope_id, limits)
            after = _limits_out(scope, scope_id, limits, "stored").model_dump(exclude={"source", "role"})
            audit(session, caller.actor, action, scope, scope_id, after=after)
        else:
            if not await repo.remove(scope, scope_id):
                return False
            audit(session, caller.actor, action, scope, scope_id)
        stored = await repo.all()
    services.limiter.policy.replace_stored(stored)
    return True


# --- role defaults (declared before the scope routes, whose path would otherwise take "roles" as a scope) ------


@router.get("/limits/roles", response_model=list[LimitsOut])
async def list_role_defaults(caller: Owner) -> list[LimitsOut]:
    policy = caller.services.limiter.policy
    return [_limits_out(ROLE_SCOPE, role, *policy.role_default(role), role=role) for role in LIMIT_ROLES]


@router.get("/limits/roles/{role}", response_model=LimitsOut)
async def get_role_default(role: Role, caller: Owner) -> LimitsOut:
    return _limits_out(ROLE_SCOPE, role, *caller.services.limiter.policy.role_default(role), role=role)


@router.put("/limits/roles/{role}", response_model=LimitsOut)
async def put_role_default(role: Role, body: LimitsBody, caller: Admin) -> LimitsOut:
    await _store(caller, "limits.put", ROLE_SCOPE, role, body.limits())
    return _limits_out(ROLE_SCOPE, role, body.limits(), "stored", role=role)


@router.delete("/limits/roles/{role}", status_code=204)
async def delete_role_default(role: Role, caller: Admin) -> None:
    if not await _store(caller, "limits.delete", ROLE_SCOPE, role, None):
        raise NotFound("No stored default for this role.", code="limits_not_found")


# --- keys, users and workspaces ---------------------------------------------------------------------------------


async def _check_scope(caller: Caller, scope: ScopeType, scope_id: str) -> None:
    """404 unless the scope exists and lies in the caller's view."""
    async with caller.services.db.session() as session:
        if scope == "workspace":
            found = await session.get(Workspace, scope_id)
            visible = found is not None and caller.sees_workspace(found.id)
        elif scope == "key":
            key = await session.get(ApiKey, scope_id)
            visible = key is not None and caller.sees_workspace(key.workspace_id)
        else:
            user = await session.get(User, scope_id)
            visible = user is not None and (caller.is_admin or user.id == caller.principal.user_id)
    if not visible:
        raise NotFound(f"No such {scope}.", code=f"{scope}_not_found")


async def _resolve(
    caller: Caller, scope: ScopeType, scope_id: str, workspace_id: str | None
) -> tuple[Limits, Source, str | None]:
    """The scope's limits as admission resolves them for its own key or user (with that owner's role)."""
    await _check_scope(caller, scope, scope_id)
    workspace = workspace_id if caller.is_admin and workspace_id else caller.principal.workspace_id
    async with caller.services.db.session() as session:
        role = await LimitRepository(session).role_of(scope, scope_id, workspace)
    limits, source = caller.services.limiter.policy.resolve(scope, scope_id, role)
    return limits, source, role if source == "role" else None


@router.get("/limits/{scope}/{scope_id}", response_model=LimitsOut)
async def get_limits(scope: ScopeType, scope_id: str, caller: Owner, workspace_id: RoleWorkspace = None) -> LimitsOut:
    limits, source, role = await _resolve(caller, scope, scope_id, workspace_id)
    return _limits_out(scope, scope_id, limits, source, role)


@router.put("/limits/{scope}/{scope_id}", response_model=LimitsOut)
async def put_limits(scope: ScopeType, scope_id: str, body: LimitsBody, caller: Admin) -> LimitsOut:
    await _check_scope(caller, scope, scope_id)
    await _store(caller, "limits.put", scope, scope_id, body.limits())
    return _limits_out(scope, scope_id, body.limits(), "stored")


@router.delete("/limits/{scope}/{scope_id}", status_code=204)
async def delete_limits(scope: ScopeType, scope_id: str, caller: Admin) -> None:
    await _check_scope(caller, scope, scope_id)
    if not await _store(caller, "limits.delete", scope, scope_id, None):
        raise NotFound("No stored limits for this scope.", code="limits_not_found")


@router.get("/limits/{scope}/{scope_id}/spend", response_model=SpendOut)
async def get_spend(scope: ScopeType, scope_id: str, caller: Owner, workspace_id: RoleWorkspace = None) -> SpendOut:
    limits, source, _ = await _resolve(caller, scope, scope_id, workspace_id)
    services = caller.services
    start, end = period_bounds(limits.period, datetime.now(UTC), ZoneInfo(services.settings.limits.timezone))
    spent = await services.accounting.spent(Scope(scope, scope_id, limits), start, end)
    budget = nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None
    return SpendOut(
        scope=scope,
        id=scope_id,
        period=limits.period,
        period_start=start,
        period_end=end,
        spent=nanos_to_units(spent),
        budget=budget,
        remaining=max(0.0, budget - nanos_to_units(spent)) if budget is not None else None,
        source=source,
    )
