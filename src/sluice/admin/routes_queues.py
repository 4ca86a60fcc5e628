"""``/admin/v1/queues``: the scheduler's live state per deployment and priority class.

Gateway admins see every tenant's waiting requests; workspace owners see the same totals with the per-tenant
breakdown narrowed to their own workspace.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from sluice.admin.policy import Caller, requires

router = APIRouter(tags=["queues"])


@router.get("/queues", response_model=dict[str, Any])
async def queues(caller: Annotated[Caller, Depends(requires("owner"))]) -> dict[str, Any]:
    tenant = None if caller.is_admin else caller.principal.tenant
    return await caller.services.gateway.scheduler.snapshot(tenant)
