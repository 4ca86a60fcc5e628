"""The CSV form of usage records, shared by the admin API export and ``sluice usage export``.

Text cells come from callers (request ids, model names) and end up in spreadsheets, which run a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) as a formula. Such cells are written
with a leading ``'``, which spreadsheets show as text and do not evaluate (OWASP's advice against CSV injection).
Numbers are written as numbers and never altered.
"""

from __future__ import annotations

from typing import Any

from sluice.accounting.prices import nanos_to_units
from sluice.store.models import UsageRecord

CSV_COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "finished_at",
    "workspace_id",
    "key_id",
    "user_id",
    "surface",
    "endpoint",
    "model",
    "deployment",
    "stream",
    "status",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "estimated",
    "cost",
    "cache_hit",
    "queue_wait_ms",
    "ttft_ms",
    "latency_ms",
    "overhead_ms",
)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_row(record: UsageRecord) -> list[Any]:
    values: list[Any] = []
    for column in CSV_COLUMNS:
        if column == "cost":
            values.append(f"{nanos_to_units(record.cost_nanos):.9f}")
        elif column in ("created_at", "finished_at"):
            values.append(getattr(record, column).isoformat())
        else:
            value = getattr(record, column)
            values.append("" if value is None else neutralise(value) if isinstance(value, str) else value)
    return values
