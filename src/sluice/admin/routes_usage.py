"""``/admin/v1/usage…`` and ``/admin/v1/limits…``: analytics, CSV export, limits and budget spend.

Scoping follows the caller's role: gateway admins see every workspace (or the one they name); owners see their
workspace; members and viewers see their own usage (their user, or their key). Limits are set by gateway admins
and read by owners for their workspace.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from sluice.accounting.analytics import MAX_HOURLY_SPAN, Analytics, UsageFilter
from sluice.accounting.export import CSV_COLUMNS, csv_row
from sluice.accounting.prices import nanos_to_units, units_to_nanos
from sluice.admin.policy import Caller, requires
from sluice.admin.schemas import Body
from sluice.errors import InvalidRequest, NotFound
from sluice.identity.audit import audit
from sluice.limits.periods import period_bounds
from sluice.limits.policy import Limits, Scope
from sluice.limits.repository import LimitRepository
from sluice.store.models import ApiKey, User, Workspace

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


class LimitsBody(Body):
    rpm: int | None = Field(None, ge=1, le=10**9)
    tpm: int | None = Field(None, ge=1, le=10**12)
    concurrent: int | None = Field(None, ge=1, le=10**6)
    budget: float | None = Field(None, ge=0, le=10**9)
    period: Literal["day", "week", "month"] = "month"


class LimitsOut(BaseModel):
    scope: str
    id: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    budget: float | None
    period: str


class SpendOut(BaseModel):
    scope: str
    id: str
    period: str
    period_start: datetime
    period_end: datetime
    spent: float
    budget: float | None
    remaining: float | None


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
    async with caller.services.db.session() as session:
        t = await Analytics(session).totals(flt)
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
    async with caller.services.db.session() as session:
        rows = await Analytics(session).series(flt, granularity, group_by)
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
    async with caller.services.db.session() as session:
        rows = await Analytics(session).top(flt, by, metric, limit)
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
    db = caller.services.db

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async with db.session() as session:
            async for batch in Analytics(session).stream_records(flt):
                for record in batch:
                    writer.writerow(csv_row(record))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(), media_type="text/csv", headers={"content-disposition": 'attachment; filename="usage.csv"'}
    )


# --- limits -----------------------------------------------------------------------------------------------------


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


def _limits_out(scope: str, scope_id: str, limits: Limits) -> LimitsOut:
    budget = nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None
    return LimitsOut(
        scope=scope,
        id=scope_id,
        rpm=limits.rpm,
        tpm=limits.tpm,
        concurrent=limits.concurrent,
        budget=budget,
        period=limits.period,
    )


@router.get("/limits/{scope}/{scope_id}", response_model=LimitsOut, tags=["limits"])
async def get_limits(
    scope: ScopeType, scope_id: str, caller: Annotated[Caller, Depends(requires("owner"))]
) -> LimitsOut:
    await _check_scope(caller, scope, scope_id)
    return _limits_out(scope, scope_id, caller.services.limiter.policy.limits_for(scope, scope_id))


@router.put("/limits/{scope}/{scope_id}", response_model=LimitsOut, tags=["limits"])
async def put_limits(
    scope: ScopeType, scope_id: str, body: LimitsBody, caller: Annotated[Caller, Depends(requires("admin"))]
) -> LimitsOut:
    await _check_scope(caller, scope, scope_id)
    budget = units_to_nanos(body.budget) if body.budget is not None else None
    limits = Limits(body.rpm, body.tpm, body.concurrent, budget, body.period)
    async with caller.services.db.session() as session:
        repo = LimitRepository(session)
        await repo.put(scope, scope_id, limits)
        audit(
            session,
            caller.actor,
            "limits.put",
            scope,
            scope_id,
            after=_limits_out(scope, scope_id, limits).model_dump(),
        )
        stored = await repo.all()
    caller.services.limiter.policy.replace_stored(stored)
    return _limits_out(scope, scope_id, limits)


@router.delete("/limits/{scope}/{scope_id}", status_code=204, tags=["limits"])
async def delete_limits(scope: ScopeType, scope_id: str, caller: Annotated[Caller, Depends(requires("admin"))]) -> None:
    await _check_scope(caller, scope, scope_id)
    async with caller.services.db.session() as session:
        repo = LimitRepository(session)
        if not await repo.remove(scope, scope_id):
            raise NotFound("No stored limits for this scope.", code="limits_not_found")
        audit(session, caller.actor, "limits.delete", scope, scope_id)
        stored = await repo.all()
    caller.services.limiter.policy.replace_stored(stored)


@router.get("/limits/{scope}/{scope_id}/spend", response_model=SpendOut, tags=["limits"])
async def get_spend(scope: ScopeType, scope_id: str, caller: Annotated[Caller, Depends(requires("owner"))]) -> SpendOut:
    await _check_scope(caller, scope, scope_id)
    services = caller.services
    limits = services.limiter.policy.limits_for(scope, scope_id)
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
    )
