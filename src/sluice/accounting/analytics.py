"""Analytics over usage: totals, time series, top spenders and raw records, always scoped by a filter.

Daily figures come from the ``usage_daily`` roll-up, so a month over a million records reads a few hundred rows;
hourly series and raw records read ``usage_records`` through its (dimension, created_at) indexes within a bounded
time range. Series carry p50 and p95 latency per bucket, read from a latency histogram (see ``latency.py``): the
roll-up's counters for daily series, the same buckets counted over raw records for hourly ones.

Every query takes a :class:`UsageFilter`; the admin API fills its ``workspace_ids`` from the caller's role, so a
workspace owner can never read another workspace's usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.accounting import latency
from sluice.accounting.traffic import CANCELLED, LOOKUP_ENDPOINTS
from sluice.store.models import UsageDaily, UsageRecord

GroupBy = Literal["model", "key", "user", "workspace"]
Granularity = Literal["day", "hour"]

MAX_HOURLY_SPAN = timedelta(days=31)

_DAILY = {
    "model": UsageDaily.model,
    "key": UsageDaily.key_id,
    "user": UsageDaily.user_id,
    "workspace": UsageDaily.workspace_id,
}
_RAW = {
    "model": UsageRecord.model,
    "key": UsageRecord.key_id,
    "user": UsageRecord.user_id,
    "workspace": UsageRecord.workspace_id,
}


@dataclass(frozen=True, slots=True)
class UsageFilter:
    start: datetime
    end: datetime
    workspace_ids: frozenset[str] | None = None  # None: every workspace (gateway admins only)
    key_id: str | None = None
    user_id: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_nanos: int


def _daily_where(query: Any, flt: UsageFilter) -> Any:
    query = query.where(UsageDaily.day >= flt.start.date(), UsageDaily.day <= _last_day(flt.end))
    if flt.workspace_ids is not None:
        query = query.where(UsageDaily.workspace_id.in_(flt.workspace_ids))
    if flt.key_id is not None:
        query = query.where(UsageDaily.key_id == flt.key_id)
    if flt.user_id is not None:
        query = query.where(UsageDaily.user_id == flt.user_id)
    if flt.model is not None:
        query = query.where(UsageDaily.model == flt.model)
    return query


def raw_where(query: Any, flt: UsageFilter) -> Any:
    query = query.where(UsageRecord.created_at >= flt.start, UsageRecord.created_at < flt.end)
    if flt.workspace_ids is not None:
        query = query.where(UsageRecord.workspace_id.in_(flt.workspace_ids))
    if flt.key_id is not None:
        query = query.where(UsageRecord.key_id == flt.key_id)
    if flt.user_id is not None:
        query = query.where(UsageRecord.user_id == flt.user_id)
    if flt.model is not None:
        query = query.where(UsageRecord.model == flt.model)
    return query


def _last_day(end: datetime) -> date:
    """The last UTC day an exclusive ``end`` still covers."""
    return (end - timedelta(microseconds=1)).astimezone(UTC).date()


def _day_aligned(flt: UsageFilter) -> bool:
    return all(moment.astimezone(UTC).time() == datetime.min.time() for moment in (flt.start, flt.end))


class Analytics:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totals(self, flt: UsageFilter) -> Totals:
        if _day_aligned(flt):
            table: Any = UsageDaily
            query = _daily_where(
                select(
                    func.coalesce(func.sum(UsageDaily.requests), 0),
                    func.coalesce(func.sum(UsageDaily.errors), 0),
                    *self._sums(table),
                ),
                flt,
            )
        else:
            table = UsageRecord
            query = raw_where(
                select(
                    func.count(),
                    func.coalesce(func.sum(func.cast(_failed(), _int())), 0),
                    *self._sums(table),
                ),
                flt,
            ).where(_traffic())
        row = (await self.session.execute(query)).one()
        return Totals(*(int(v or 0) for v in row))

    @staticmethod
    def _sums(table: Any) -> list[Any]:
        return [
            func.coalesce(func.sum(getattr(table, c)), 0)
            for c in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos")
        ]

    async def series(
        self, flt: UsageFilter, granularity: Granularity, group_by: GroupBy | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens, cost and p50/p95 latency per time bucket (and per group when asked), oldest first."""
        if granularity == "day":
            group = _DAILY[group_by] if group_by else literal("")
            histogram = [func.sum(UsageDaily.__table__.c[name]) for name in latency.COLUMNS]
            query = _daily_where(
                select(
                    UsageDaily.day,
                    group,
                    func.sum(UsageDaily.requests),
                    func.sum(UsageDaily.errors),
                    *self._sums(UsageDaily),
                    *histogram,
                ),
                flt,
            )
            query = query.group_by(UsageDaily.day, group).order_by(UsageDaily.day)
            rows = (await self.session.execute(query)).all()
            return [_bucket(r[0].isoformat(), r, [int(c or 0) for c in r[8:]]) for r in rows]
        if flt.end - flt.start > MAX_HOURLY_SPAN:
            raise ValueError(f"hourly series cover at most {MAX_HOURLY_SPAN.days} days")
        hour = self._hour_expression()
        raw_group: Any = _RAW[group_by] if group_by else literal("")
        # One scan: rows come out per (hour, group, latency bucket) and are folded into one point per (hour, group)
        # below; failed calls get bucket -1 so they count as requests and errors but stay out of the histogram.
        bucket = case((UsageRecord.status >= 400, -1), else_=bucket_expression(UsageRecord.latency_ms))
        query = raw_where(
            select(
                hour,
                raw_group,
                func.count(),
                func.sum(func.cast(_failed(), _int())),
                *self._sums(UsageRecord),
                bucket,
            ),
            flt,
        ).where(_traffic())
        query = query.group_by(hour, raw_group, bucket).order_by(hour)
        points: dict[tuple[str, Any], tuple[list[Any], list[int]]] = {}
        for r in (await self.session.execute(query)).all():
            key = (_hour_label(r[0]), r[1])
            found = points.get(key)
            if found is None:
                found = points[key] = ([r[0], r[1], *([0] * 6)], [0] * latency.BUCKETS)
            totals, counts = found
            for i in range(2, 8):
                totals[i] += int(r[i] or 0)
            if r[8] >= 0:
                counts[int(r[8])] += int(r[2])
        return [_bucket(label, totals, counts) for (label, _), (totals, counts) in points.items()]

    def _hour_expression(self) -> Any:
        dialect = self.session.bind.dialect.name if self.session.bind is not None else "sqlite"
        if dialect == "postgresql":
            return func.date_trunc("hour", UsageRecord.created_at)
        return func.strftime("%Y-%m-%dT%H:00:00", UsageRecord.created_at)

    async def top(
        self, flt: UsageFilter, by: GroupBy, metric: Literal["cost", "tokens", "requests"] = "cost", limit: int = 10
    ) -> list[dict[str, Any]]:
        column = _DAILY[by]
        measure = {
            "cost": func.sum(UsageDaily.cost_nanos),
            "tokens": func.sum(UsageDaily.prompt_tokens + UsageDaily.completion_tokens),
            "requests": func.sum(UsageDaily.requests),
        }[metric]
        query = _daily_where(
            select(
                column,
                func.sum(UsageDaily.requests),
                func.sum(UsageDaily.prompt_tokens),
                func.sum(UsageDaily.completion_tokens),
                func.sum(UsageDaily.cost_nanos),
            ),
            flt,
        )
        query = query.where(column != "").group_by(column).order_by(measure.desc()).limit(limit)
        rows = (await self.session.execute(query)).all()
        return [
            {
                "id": r[0],
                "requests": int(r[1]),
                "prompt_tokens": int(r[2]),
                "completion_tokens": int(r[3]),
                "cost_nanos": int(r[4]),
            }
            for r in rows
        ]

    async def records(self, flt: UsageFilter, limit: int = 100, before: datetime | None = None) -> list[UsageRecord]:
        """Raw records, newest first, one page at a time (``before``: the last page's oldest ``created_at``)."""
        query = raw_where(select(UsageRecord), flt)
        if before is not None:
            query = query.where(UsageRecord.created_at < before)
        query = query.order_by(UsageRecord.created_at.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars().all())

    async def stream_records(self, flt: UsageFilter, batch: int = 5000) -> AsyncIterator[Sequence[UsageRecord]]:
        """Every matching record, oldest first, in batches (for CSV export without loading it all)."""
        after: tuple[datetime, str] | None = None
        while True:
            query = raw_where(select(UsageRecord), flt)
            if after is not None:
                query = query.where(
                    (UsageRecord.created_at > after[0])
                    | ((UsageRecord.created_at == after[0]) & (UsageRecord.id > after[1]))
                )
            query = query.order_by(UsageRecord.created_at, UsageRecord.id).limit(batch)
            rows = (await self.session.execute(query)).scalars().all()
            if not rows:
                return
            yield rows
            after = (rows[-1].created_at, rows[-1].id)


def bucket_expression(column: Any, low: int = 0, high: int = latency.BUCKETS - 1) -> Any:
    """``latency.bucket_of(column)`` in SQL: a binary search of nested CASEs, so a row costs five comparisons
    rather than up to 31 (a flat CASE tries the edges in order); the edges are the same, so hourly and daily
    series put every latency in the same bucket."""
    if low == high:
        return literal(low)
    middle = (low + high + 1) // 2  # buckets below `middle` hold latencies under BOUNDS_MS[middle - 1]
    return case(
        (column < latency.BOUNDS_MS[middle - 1], bucket_expression(column, low, middle - 1)),
        else_=bucket_expression(column, middle, high),
    )


def _failed() -> Any:
    """``traffic.is_error`` in SQL."""
    return (UsageRecord.status >= 400) & (UsageRecord.status != CANCELLED)


def _traffic() -> Any:
    """``traffic.is_traffic`` in SQL."""
    return UsageRecord.endpoint.notin_(LOOKUP_ENDPOINTS)


def _int() -> Any:
    return Integer()


def _hour_label(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:00:00Z")
    return f"{value}Z"


def _bucket(label: str, row: Any, histogram: list[int]) -> dict[str, Any]:
    return {
        "bucket": label,
        "group": row[1] or None,
        "requests": int(row[2] or 0),
        "errors": int(row[3] or 0),
        "prompt_tokens": int(row[4] or 0),
        "completion_tokens": int(row[5] or 0),
        "cached_tokens": int(row[6] or 0),
        "cost_nanos": int(row[7] or 0),
        "latency_p50_ms": latency.percentile(histogram, 0.5),
        "latency_p95_ms": latency.percentile(histogram, 0.95),
    }
