"""``/admin/v1/limits…``: limits per key, user, workspace and role default, and a scope's budget spend.

Gateway admins set limits; owners read them for their workspace. Every read resolves a scope's limits exactly as
admission does (:meth:`PolicyTable.resolve`: stored, configured, role default, scope default), and says which of
those it came from. Changes are audited and apply to this replica at once and to the others within the
stored-settings refresh (15 s). The rules live in :class:`sluice.limits.stored.StoredLimits`, shared
with ``sluice limits``; these routes parse, declare the least role, call it and render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from sluice.accounting.prices import nanos_to_units, units_to_nanos
from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import Body
from sluice.config import LIMIT_ROLES
from sluice.limits.policy import ROLE_SCOPE, Limits, Source
from sluice.limits.stored import Resolved

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


def _resolved_out(scope: str, scope_id: str, resolved: Resolved) -> LimitsOut:
    return _limits_out(scope, scope_id, resolved.limits, resolved.source, resolved.role)


# --- role defaults (declared before the scope routes, whose path would otherwise take "roles" as a scope) ------


@router.get("/limits/roles", response_model=list[LimitsOut])
async def list_role_defaults(caller: Owner) -> list[LimitsOut]:
    stored = caller.services.limits
    return [_resolved_out(ROLE_SCOPE, role, await stored.role_default(role)) for role in LIMIT_ROLES]


@router.get("/limits/roles/{role}", response_model=LimitsOut)
async def get_role_default(role: Role, caller: Owner) -> LimitsOut:
    return _resolved_out(ROLE_SCOPE, role, await caller.services.limits.role_default(role))


@router.put("/limits/roles/{role}", response_model=LimitsOut)
async def put_role_default(role: Role, body: LimitsBody, caller: Admin) -> LimitsOut:
    await caller.services.limits.put(caller, ROLE_SCOPE, role, body.limits())
    return _limits_out(ROLE_SCOPE, role, body.limits(), "stored", role=role)


@router.delete("/limits/roles/{role}", status_code=204)
async def delete_role_default(role: Role, caller: Admin) -> None:
    await caller.services.limits.remove(caller, ROLE_SCOPE, role)


# --- keys, users and workspaces ---------------------------------------------------------------------------------


@router.get("/limits/{scope}/{scope_id}", response_model=LimitsOut)
async def get_limits(scope: ScopeType, scope_id: str, caller: Owner, workspace_id: RoleWorkspace = None) -> LimitsOut:
    return _resolved_out(scope, scope_id, await caller.services.limits.resolve(caller, scope, scope_id, workspace_id))


@router.put("/limits/{scope}/{scope_id}", response_model=LimitsOut)
async def put_limits(scope: ScopeType, scope_id: str, body: LimitsBody, caller: Admin) -> LimitsOut:
    await caller.services.limits.put(caller, scope, scope_id, body.limits())
    return _limits_out(scope, scope_id, body.limits(), "stored")


@router.delete("/limits/{scope}/{scope_id}", status_code=204)
async def delete_limits(scope: ScopeType, scope_id: str, caller: Admin) -> None:
    await caller.services.limits.remove(caller, scope, scope_id)


@router.get("/limits/{scope}/{scope_id}/spend", response_model=SpendOut)
async def get_spend(scope: ScopeType, scope_id: str, caller: Owner, workspace_id: RoleWorkspace = None) -> SpendOut:
    spend = await caller.services.limits.spend(caller, scope, scope_id, workspace_id)
    limits = spend.resolved.limits
    spent = nanos_to_units(spend.spent_nanos)
    budget = nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None
    return SpendOut(
        scope=scope,
        id=scope_id,
        period=limits.period,
        period_start=spend.start,
        period_end=spend.end,
        spent=spent,
        budget=budget,
        remaining=max(0.0, budget - spent) if budget is not None else None,
        source=spend.resolved.source,
    )
