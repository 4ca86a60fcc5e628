"""SQL for usage records and their daily roll-up (the only module that writes these tables)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.accounting.latency import COLUMNS as LATENCY_COLUMNS
from sluice.accounting.latency import bucket_of
from sluice.accounting.traffic import is_error, is_traffic
from sluice.store.models import UsageDaily, UsageRecord

_RECORD_COLUMNS = frozenset(c.name for c in UsageRecord.__table__.columns)
_ROLLUP_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanos",
    "latency_ms_sum",
    *LATENCY_COLUMNS,
)
_SCOPE_COLUMNS = {"key": UsageRecord.key_id, "user": UsageRecord.user_id, "workspace": UsageRecord.workspace_id}


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in record.items() if k in _RECORD_COLUMNS}
    row["created_at"] = datetime.fromtimestamp(record["created_ts"], UTC)
    row["finished_at"] = datetime.fromtimestamp(record["finished_ts"], UTC)
    return row


# With RETURNING, SQLAlchemy sends executemany rows as one multi-row INSERT per batch, whose SQL differs with the
# number of rows. Each distinct statement is prepared and kept in the driver's statement cache (sqlite3's per
# connection, asyncpg's and PostgreSQL's per session); a batch of any size up to the shipper's would leave hundreds
# of large prepared statements behind (measured: RSS growing ~1.3 KB per shipped record, ~100 MB over 150,000).
# Batches are therefore cut into chunks of a few fixed sizes only: so many of the largest, then powers of two.
_CHUNK = 64


def _chunks(count: int) -> list[tuple[int, int]]:
    """(start, end) slices of ``count`` rows whose lengths are ``_CHUNK`` or a smaller power of two."""
    spans = []
    start = 0
    while start < count:
        size = _CHUNK
        while size > count - start:
            size //= 2
        spans.append((start, start + size))
        start += size
    return spans


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert records whose id is not stored yet; return exactly those (replays insert nothing).

        One statement with the rows as executemany parameters: SQLAlchemy compiles it once and caches it, where a
        multi-row VALUES statement would be compiled afresh for every batch size (milliseconds each, on the loop).
        """
        if not records:
            return []
        # Core on the table (no ORM bookkeeping), and RETURNING in any order: asking SQLAlchemy to keep the
        # parameters' order makes it fall back to far slower row-by-row handling.
        table = UsageRecord.__table__
        statement = _insert(self.session, table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        connection = await self.session.connection()
        rows = [_row(r) for r in records]
        inserted: set[str] = set()
        for start, end in _chunks(len(rows)):
            result = await connection.execute(statement, rows[start:end])
            inserted.update(result.scalars().all())
        return [r for r in records if r["id"] in inserted]

    async def add_to_rollup(self, records: Sequence[dict[str, Any]]) -> None:
        """Fold newly inserted records into the per-day totals (one cached upsert, executemany)."""
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in records:
            if not is_traffic(r):
                continue
            day = datetime.fromtimestamp(r["created_ts"], UTC).date()
            dims = (
                day,
                r.get("workspace_id") or "",
                r.get("key_id") or "",
                r.get("user_id") or "",
                r.get("model") or "",
            )
            t = totals.setdefault(dims, dict.fromkeys(_ROLLUP_SUMS, 0))
            t["requests"] += 1
            t["errors"] += 1 if is_error(r["status"]) else 0
            for field in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_nanos"):
                t[field] += int(r[field])
            t["latency_ms_sum"] += float(r["latency_ms"])
            if r["status"] < 400:  # the p50/p95 histogram counts answered requests only
                t[LATENCY_COLUMNS[bucket_of(float(r["latency_ms"]))]] += 1
        if not totals:
            return
        table = UsageDaily.__table__
        statement = _insert(self.session, table)
        statement = statement.on_conflict_do_update(
            index_elements=["day", "workspace_id", "key_id", "user_id", "model"],
            set_={name: table.c[name] + statement.excluded[name] for name in _ROLLUP_SUMS},
        )
        rows = [
            {"day": day, "workspace_id": workspace, "key_id": key, "user_id": user, "model": model, **t}
            for (day, workspace, key, user, model), t in sorted(totals.items(), key=lambda kv: kv[0])
        ]
        connection = await self.session.connection()
        await connection.execute(statement, rows)

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        result = await self.session.execute(select(UsageRecord.id).where(UsageRecord.id.in_(ids)))
        return set(result.scalars().all())

    async def spent(
        self, scope_type: str, scope_id: str, start: datetime, end: datetime, excluding: Sequence[str] = ()
    ) -> int:
        """Cost recorded for a scope in [start, end), leaving out the records ``excluding`` names."""
        column = _SCOPE_COLUMNS[scope_type]
        statement = select(func.coalesce(func.sum(UsageRecord.cost_nanos), 0)).where(
            column == scope_id, UsageRecord.created_at >= start, UsageRecord.created_at < end
        )
        if excluding:
            statement = statement.where(UsageRecord.id.not_in(excluding))
        return int((await self.session.execute(statement)).scalar_one())
