"""``/admin/v1/usage…``: analytics and CSV export (limits and budget spend: routes_limits.py).

Scoping follows the caller's role: gateway admins see every workspace (or the one they name); owners see their
workspace; members and viewers see their own usage (their user, or their key). The reports are the accounting
room's (:class:`~sluice.accounting.reports.UsageReports`, shared with ``sluice usage``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from sluice.accounting.analytics import MAX_HOURLY_SPAN, UsageFilter
from sluice.accounting.prices import nanos_to_units
from sluice.admin.policy import Caller, requires
from sluice.errors import InvalidRequest

router = APIRouter(tags=["usage"])

Viewer = Annotated[Caller, Depends(requires("viewer"))]
MAX_SPAN = timedelta(days=366)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)
ScopeType = Literal["key", "user", "workspace"]


class UsageTotals(BaseModel):
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost: float
    cost_nanos: int


class UsageBucket(BaseModel):
    bucket: str
    group: str | None = None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_nanos: int
    latency_p50_ms: float | None = Field(
        None, description="Median latency of the bucket's successful requests (from a histogram; null: none)."
    )
    latency_p95_ms: float | None = Field(None, description="95th-percentile latency, likewise.")


class Spender(BaseModel):
    id: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int


def usage_filter(
    caller: Caller,
    start: datetime | None,
    end: datetime | None,
    workspace_id: str | None,
    key_id: str | None,
    user_id: str | None,
    model: str | None,
) -> UsageFilter:
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. 2026-11-01T00:00:00Z).", param=name)
        if moment is not None and not EARLIEST <= moment <= LATEST:
            raise InvalidRequest(f"{name} must lie between the years 2000 and 2999.", param=name)
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = start or end - timedelta(days=30)
    if start >= end:
        raise InvalidRequest("start must be before end.", param="start")
    if end - start > MAX_SPAN:
        raise InvalidRequest(f"A query covers at most {MAX_SPAN.days} days.", param="start")
    p = caller.principal
    workspaces = frozenset({workspace_id}) if workspace_id is not None else None
    if not caller.is_admin:
        workspaces = frozenset({p.workspace_id or ""})
        if workspace_id not in (None, p.workspace_id):
            workspaces = frozenset()  # another workspace: nothing, exactly like an empty one
        if not caller.at_least("owner"):  # members and viewers: their own usage only
            if p.user_id is not None:
                user_id = p.user_id
            else:
                key_id = p.key_id or ""
    return UsageFilter(start, end, workspaces, key_id, user_id, model)


Start = Annotated[datetime | None, Query(description="Inclusive, with a time zone; default: 30 days before end.")]
End = Annotated[datetime | None, Query(description="Exclusive, with a time zone; default: the next full hour.")]
Id = Annotated[str | None, Query(max_length=64)]


@router.get("/usage", response_model=UsageTotals)
async def usage_totals(
    caller: Viewer,
    start: Start = None,
    end: End = None,
    workspace_id: Id = None,
    key_id: Id = None,
    user_id: Id = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> UsageTotals:
    flt = usage_filter(caller, start, end, workspace_id, key_id, user_id, model)
    t = await caller.services.accounting.reports.totals(flt)
    return UsageTotals(
        requests=t.requests,
        errors=t.errors,
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        cached_tokens=t.cached_tokens,
        cost=nanos_to_units(t.cost_nanos),
        cost_nanos=t.cost_nanos,
    )


@router.get("/usage/series", response_model=list[UsageBucket])
async def usage_series(
    caller: Viewer,
    granularity: Literal["day", "hour"] = "day",
    group_by: Literal["model", "key", "user", "workspace"] | None = None,
    start: Start = None,
    end: End = None,
    workspace_id: Id = None,
    key_id: Id = None,
    user_id: Id = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> list[UsageBucket]:
    flt = usage_filter(caller, start, end, workspace_id, key_id, user_id, model)
    if granularity == "hour" and flt.end - flt.start > MAX_HOURLY_SPAN:
        raise InvalidRequest(f"Hourly series cover at most {MAX_HOURLY_SPAN.days} days.", param="granularity")
    rows = await caller.services.accounting.reports.series(flt, granularity, group_by)
    return [UsageBucket(**_bucket(r, group_by is not None)) for r in rows]


def _bucket(row: dict[str, Any], grouped: bool) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k in UsageBucket.model_fields}
    if not grouped:
        out["group"] = None
    return out


@router.get("/usage/top", response_model=list[Spender])
async def usage_top(
    caller: Annotated[Caller, Depends(requires("owner"))],
    by: Literal["model", "key", "user", "workspace"] = "key",
    metric: Literal["cost", "tokens", "requests"] = "cost",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    start: Start = None,
    end: End = None,
    workspace_id: Id = None,
) -> list[Spender]:
    flt = usage_filter(caller, start, end, workspace_id, None, None, None)
    rows = await caller.services.accounting.reports.top(flt, by, metric, limit)
    return [Spender(**r) for r in rows]


@router.get("/usage/export.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
async def usage_export(
    caller: Viewer,
    start: Start = None,
    end: End = None,
    workspace_id: Id = None,
    key_id: Id = None,
    user_id: Id = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> StreamingResponse:
    flt = usage_filter(caller, start, end, workspace_id, key_id, user_id, model)
    return StreamingResponse(
        caller.services.accounting.reports.csv_chunks(flt),
        media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="usage.csv"'},
    )
