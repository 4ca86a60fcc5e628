"""``/admin/v1/me/limits``: a caller's own limits and where they stand in the current budget period.

Every signed-in caller (viewers included) may read what applies to them — their key (when calling with one),
their user and their workspace — exactly as admission resolves it, with the spend and what is left of each
budget. Nothing here names another scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sluice.accounting.prices import nanos_to_units
from sluice.admin.policy import Caller, requires
from sluice.limits.policy import Source
from sluice.limits.standing import Standing, standing

router = APIRouter(tags=["limits"])


class OwnLimits(BaseModel):
    scope: str = Field(description="key, user or workspace")
    id: str
    name: str | None = Field(description="The key's name, the user's email or the workspace's name.")
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    budget: float | None
    period: str
    period_start: datetime
    period_end: datetime
    spent: float | None = Field(description="This period's spend; null when usage cannot be read right now.")
    remaining: float | None
    source: Source


class OwnStanding(BaseModel):
    currency: str
    scopes: list[OwnLimits]


def own_limits(found: Standing, name: str | None) -> OwnLimits:
    limits = found.limits
    remaining = found.remaining_nanos
    return OwnLimits(
        scope=found.scope,
        id=found.scope_id,
        name=name,
        rpm=limits.rpm,
        tpm=limits.tpm,
        concurrent=limits.concurrent,
        budget=nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None,
        period=limits.period,
        period_start=found.period_start,
        period_end=found.period_end,
        spent=nanos_to_units(found.spent_nanos) if found.spent_nanos is not None else None,
        remaining=nanos_to_units(remaining) if remaining is not None else None,
        source=found.source,
    )


@router.get("/me/limits", response_model=OwnStanding)
async def my_limits(caller: Annotated[Caller, Depends(requires("viewer"))]) -> OwnStanding:
    p = caller.principal
    services = caller.services
    scopes = [("key", p.key_id, p.role), ("user", p.user_id, p.role), ("workspace", p.workspace_id, None)]
    names = await services.identity.subjects.display_names(
        users=[p.user_id], keys=[p.key_id], workspaces=[p.workspace_id]
    )
    labels = {
        "key": names.keys[p.key_id].name if p.key_id in names.keys else None,
        "user": names.users.get(p.user_id or ""),
        "workspace": names.workspaces.get(p.workspace_id or ""),
    }
    out = []
    for scope, scope_id, role in scopes:
        if scope_id is None:
            continue
        found = await standing(
            services.limiter.policy, services.accounting, services.settings.limits.timezone, scope, scope_id, role
        )
        out.append(own_limits(found, labels[scope]))
    return OwnStanding(currency=services.settings.currency, scopes=out)
