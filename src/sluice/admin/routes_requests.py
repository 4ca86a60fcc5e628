"""``/admin/v1/requests…``: the request log, recent calls one page at a time, and one call in detail.

Each entry is a usage record with the names of its user, key and workspace (never the prompt or the answer: the
gateway stores neither). Scoping is the usage API's: gateway admins see every workspace (or the one they name),
owners their workspace, members and viewers their own calls. The chat page finds an answer's tokens and cost here,
by the request id it gave the call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from sluice.accounting.prices import nanos_to_units
from sluice.accounting.request_log import Outcome, RequestQuery
from sluice.admin.policy import Caller, requires
from sluice.admin.routes_usage import End, Id, Start, usage_filter
from sluice.errors import InvalidRequest, NotFound
from sluice.identity.names import DisplayNames
from sluice.store.models import UsageRecord

router = APIRouter(tags=["requests"])

Viewer = Annotated[Caller, Depends(requires("viewer"))]
CURSOR_SEPARATOR = "~"


class RequestOut(BaseModel):
    id: str = Field(description="The usage record's id (one per call).")
    request_id: str
    created_at: datetime
    finished_at: datetime
    user_id: str | None
    user_email: str | None
    key_id: str | None
    key_name: str | None
    key_prefix: str | None
    workspace_id: str | None
    workspace_name: str | None
    surface: str
    endpoint: str
    model: str | None
    deployment: str | None
    provider: str | None
    upstream_model: str | None
    stream: bool
    status: int
    error_type: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    estimated: bool = Field(description="The tokens were estimated (the upstream reported none).")
    cost: float = Field(description="In the price table's currency.")
    cache_hit: bool
    queue_wait_ms: float
    ttft_ms: float | None
    latency_ms: float
    overhead_ms: float | None


class RequestPage(BaseModel):
    data: list[RequestOut]
    next_before: str | None = Field(description="Pass as `before` for the next (older) page; null on the last.")


def request_out(record: UsageRecord, names: DisplayNames) -> RequestOut:
    key = names.keys.get(record.key_id or "")
    return RequestOut(
        id=record.id,
        request_id=record.request_id,
        created_at=record.created_at,
        finished_at=record.finished_at,
        user_id=record.user_id,
        user_email=names.users.get(record.user_id or ""),
        key_id=record.key_id,
        key_name=key.name if key else None,
        key_prefix=key.prefix if key else None,
        workspace_id=record.workspace_id,
        workspace_name=names.workspaces.get(record.workspace_id or ""),
        surface=record.surface,
        endpoint=record.endpoint,
        model=record.model,
        deployment=record.deployment,
        provider=record.provider,
        upstream_model=record.upstream_model,
        stream=record.stream,
        status=record.status,
        error_type=record.error_type,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,
        estimated=record.estimated,
        cost=nanos_to_units(record.cost_nanos),
        cache_hit=record.cache_hit,
        queue_wait_ms=record.queue_wait_ms,
        ttft_ms=record.ttft_ms,
        latency_ms=record.latency_ms,
        overhead_ms=record.overhead_ms,
    )


def _cursor(record: UsageRecord) -> str:
    return f"{record.created_at.isoformat()}{CURSOR_SEPARATOR}{record.id}"


def _parse_cursor(text: str) -> tuple[datetime, str]:
    at, _, record_id = text.partition(CURSOR_SEPARATOR)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRequest("before is not a cursor this API gave.", param="before") from None
    if not record_id or moment.tzinfo is None:
        raise InvalidRequest("before is not a cursor this API gave.", param="before")
    return moment, record_id


async def _with_names(caller: Caller, records: list[UsageRecord]) -> list[RequestOut]:
    names = await caller.services.identity.subjects.display_names(
        users=(r.user_id for r in records),
        keys=(r.key_id for r in records),
        workspaces=(r.workspace_id for r in records),
    )
    return [request_out(r, names) for r in records]


@router.get("/requests", response_model=RequestPage)
async def list_requests(
    caller: Viewer,
    start: Start = None,
    end: End = None,
    workspace_id: Id = None,
    key_id: Id = None,
    user_id: Id = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    deployment: Annotated[str | None, Query(max_length=512)] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[Outcome | None, Query(description="ok (< 400), error, or cancelled (499).")] = None,
    lookups: Annotated[bool, Query(description="Include model lists and queue places (left out by default).")] = False,
    before: Annotated[str | None, Query(max_length=200, description="The `next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RequestPage:
    """Recent calls, newest first."""
    query = RequestQuery(
        usage_filter(caller, start, end, workspace_id, key_id, user_id, model),
        request_id=request_id,
        deployment=deployment,
        outcome=outcome,
        lookups=lookups,
        before=_parse_cursor(before) if before else None,
        limit=limit,
    )
    records = await caller.services.accounting.reports.request_page(query)
    return RequestPage(
        data=await _with_names(caller, records),
        next_before=_cursor(records[-1]) if len(records) == limit else None,
    )


@router.get("/requests/{record_id}", response_model=RequestOut)
async def get_request(record_id: str, caller: Viewer) -> RequestOut:
    """One call by its record id (404 outside the caller's scope)."""
    scope = usage_filter(caller, None, None, None, None, None, None)
    record = await caller.services.accounting.reports.request(record_id, scope)
    if record is None:
        raise NotFound("No such request.")
    return (await _with_names(caller, [record]))[0]
