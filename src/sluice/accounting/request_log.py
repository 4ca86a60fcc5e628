"""The request log: usage records one page at a time, newest first, filtered and scoped like every usage query.

A record holds what a call did (who, which model and deployment, status, tokens, cost, timings), never the prompt
or the answer: the gateway does not store either. Pages are cut by a keyset cursor on (created_at, id), so a page
costs the same however deep the reader goes and records shipped meanwhile never shift a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.accounting.analytics import UsageFilter, raw_where
from sluice.accounting.traffic import CANCELLED, LOOKUP_ENDPOINTS
from sluice.store.models import UsageRecord

Outcome = Literal["ok", "error", "cancelled"]  # cancelled: the client left (see traffic.CANCELLED)


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """What to list: the usage filter (its scope decided by the caller's role) and the log's own filters."""

    usage: UsageFilter
    request_id: str | None = None
    deployment: str | None = None
    outcome: Outcome | None = None
    lookups: bool = False  # list look-ups too (model lists, queue places: traffic.LOOKUP_ENDPOINTS)
    before: tuple[datetime, str] | None = None  # the cursor: the last record of the previous page
    limit: int = 50


def _outcome_where(query: Any, outcome: Outcome | None) -> Any:
    if outcome == "ok":
        return query.where(UsageRecord.status < 400)
    if outcome == "cancelled":
        return query.where(UsageRecord.status == CANCELLED)
    if outcome == "error":
        return query.where(UsageRecord.status >= 400, UsageRecord.status != CANCELLED)
    return query


class RequestLog:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, query: RequestQuery) -> list[UsageRecord]:
        statement = raw_where(select(UsageRecord), query.usage)
        if query.request_id is not None:
            statement = statement.where(UsageRecord.request_id == query.request_id)
        if query.deployment is not None:
            statement = statement.where(UsageRecord.deployment == query.deployment)
        statement = _outcome_where(statement, query.outcome)
        if not query.lookups:
            statement = statement.where(UsageRecord.endpoint.notin_(LOOKUP_ENDPOINTS))
        if query.before is not None:
            at, record_id = query.before
            statement = statement.where(
                (UsageRecord.created_at < at) | ((UsageRecord.created_at == at) & (UsageRecord.id < record_id))
            )
        statement = statement.order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc()).limit(query.limit)
        return list((await self.session.execute(statement)).scalars())

    async def one(self, record_id: str, scope: UsageFilter) -> UsageRecord | None:
        """One record by its id, if the caller's scope covers it (its workspaces, key and user; any time)."""
        statement = select(UsageRecord).where(UsageRecord.id == record_id)
        if scope.workspace_ids is not None:
            statement = statement.where(UsageRecord.workspace_id.in_(scope.workspace_ids))
        if scope.key_id is not None:
            statement = statement.where(UsageRecord.key_id == scope.key_id)
        if scope.user_id is not None:
            statement = statement.where(UsageRecord.user_id == scope.user_id)
        return (await self.session.execute(statement)).scalar_one_or_none()
