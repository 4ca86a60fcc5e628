"""Usage charts that read at a glance: every day (or hour) of the range present, zeros included; requests, tokens,
cost and latency each on a chart of their own, with their own axis; time labels people read ('Dec 4', 'Dec 4
14:00'), all UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from nicegui import ui

from sluice.web.money import SYMBOLS

FAILED = "#dc2626"
ZERO = {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost_nanos": 0}


def _day(moment: datetime) -> str:
    return f"{moment:%b} {moment.day}"


def bucket_keys(granularity: str, start: datetime, end: datetime) -> list[datetime]:
    """The buckets of [start, end): each UTC day, or each hour."""
    step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
    if granularity == "day":
        moment = datetime.combine(start.astimezone(UTC).date(), datetime.min.time(), UTC)
    else:
        moment = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while moment < end:
        keys.append(moment)
        moment += step
    return keys


def _bucket_moment(label: str) -> datetime:
    if len(label) == 10:  # a day: 2026-12-04
        return datetime.combine(date.fromisoformat(label), datetime.min.time(), UTC)
    return datetime.fromisoformat(label.replace("Z", "+00:00")).astimezone(UTC)


def filled(rows: list[dict[str, Any]], granularity: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One point per bucket of the range, oldest first, with zeros (and no latency) where nothing happened."""
    by_moment = {_bucket_moment(r["bucket"]): r for r in rows}
    points = []
    for moment in bucket_keys(granularity, start, end):
        found = by_moment.get(moment)
        point: dict[str, Any] = (
            dict(found) if found is not None else {**ZERO, "latency_p50_ms": None, "latency_p95_ms": None}
        )
        point["label"] = _day(moment) if granularity == "day" else f"{_day(moment)} {moment:%H}:00"
        points.append(point)
    return points


def _chart(title: str, labels: list[str], series: list[dict[str, Any]], unit: str, marker: str) -> None:
    ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "legend": {"bottom": 0},
            "grid": {"left": 60, "right": 20, "top": 40, "bottom": 50},
            "xAxis": {"type": "category", "data": labels, "axisLabel": {"hideOverlap": True}},
            "yAxis": {"type": "value", "name": unit, "minInterval": 1 if unit in ("requests", "tokens") else 0},
            "series": series,
        }
    ).classes("w-full h-64").mark(marker)


def usage_charts(points: list[dict[str, Any]], currency: str, per: str) -> None:
    """Four charts side by side on wide screens, stacked on narrow ones."""
    labels = [p["label"] for p in points]
    with ui.grid().classes("w-full grid-cols-1 xl:grid-cols-2 gap-2"):
        _chart(
            f"Requests per {per}",
            labels,
            [
                {
                    "name": "answered",
                    "type": "bar",
                    "stack": "r",
                    "data": [p["requests"] - p["errors"] for p in points],
                },
                {
                    "name": "failed",
                    "type": "bar",
                    "stack": "r",
                    "color": "#dc2626",
                    "data": [p["errors"] for p in points],
                },
            ],
            "requests",
            "chart-requests",
        )
        _chart(
            f"Tokens per {per}",
            labels,
            [
                {"name": "in", "type": "bar", "stack": "t", "data": [p["prompt_tokens"] for p in points]},
                {"name": "out", "type": "bar", "stack": "t", "data": [p["completion_tokens"] for p in points]},
            ],
            "tokens",
            "chart-tokens",
        )
        _chart(
            f"Cost per {per}",
            labels,
            [{"name": "cost", "type": "bar", "data": [round(p["cost_nanos"] / 1e9, 6) for p in points]}],
            SYMBOLS.get(currency, currency).strip(),
            "chart-cost",
        )
        _chart(
            f"Latency per {per} (answered requests)",
            labels,
            [
                {"name": "p50", "type": "line", "connectNulls": False, "data": [p["latency_p50_ms"] for p in points]},
                {"name": "p95", "type": "line", "connectNulls": False, "data": [p["latency_p95_ms"] for p in points]},
            ],
            "ms",
            "chart-latency",
        )
