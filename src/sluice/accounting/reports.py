"""Usage reports for the admin API and ``sluice usage``: totals, series, top spenders, the request log and the CSV
export.

The queries are :class:`~sluice.accounting.analytics.Analytics`; this service runs each in its own unit of work.
Who may read what is the caller's filter (:class:`UsageFilter`): the admin API narrows it to the caller's own
workspace or usage, the operator at the CLI reads everything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any, Literal

from sluice.accounting.analytics import Analytics, Granularity, GroupBy, Totals, UsageFilter
from sluice.accounting.export import CSV_COLUMNS, csv_row
from sluice.accounting.request_log import RequestLog, RequestQuery
from sluice.store.db import Database
from sluice.store.models import UsageRecord

Metric = Literal["cost", "tokens", "requests"]


class UsageReports:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def totals(self, flt: UsageFilter) -> Totals:
        async with self.db.session() as session:
            return await Analytics(session).totals(flt)

    async def series(
        self, flt: UsageFilter, granularity: Granularity, group_by: GroupBy | None = None
    ) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            return await Analytics(session).series(flt, granularity, group_by)

    async def top(
        self, flt: UsageFilter, by: GroupBy, metric: Metric = "cost", limit: int = 10
    ) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            return await Analytics(session).top(flt, by, metric, limit)

    async def request_page(self, query: RequestQuery) -> list[UsageRecord]:
        """One page of the request log (see :mod:`sluice.accounting.request_log`)."""
        async with self.db.session() as session:
            return await RequestLog(session).page(query)

    async def request(self, record_id: str, scope: UsageFilter) -> UsageRecord | None:
        async with self.db.session() as session:
            return await RequestLog(session).one(record_id, scope)

    async def csv_chunks(self, flt: UsageFilter) -> AsyncIterator[str]:
        """Every matching record as CSV text (the header first), a batch of rows per chunk, never all at once."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async with self.db.session() as session:
            async for batch in Analytics(session).stream_records(flt):
                for record in batch:
                    writer.writerow(csv_row(record))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
