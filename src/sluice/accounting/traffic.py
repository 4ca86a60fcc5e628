"""What analytics count: which records are traffic, and which traffic failed.

Every call leaves a usage record, look-ups included: listing the models (``GET /v1/models``, ``/api/tags``) and
asking for a place in line (``GET /v1/queue``) are what clients — the web UI on every chat page — do between
questions. They cost nothing and are not what anyone means by requests, so totals, series and top lists leave
them out (the records stay, for the request log and the CSV export).

A call the client left (status 499: the Stop button, a closed connection) is billed for what was generated but is
not an error of the gateway or the upstream, so it counts as a request and not as an error.
"""

from __future__ import annotations

from typing import Any

CANCELLED = 499
LOOKUP_ENDPOINTS = ("models", "queue")


def is_traffic(record: dict[str, Any]) -> bool:
    return record.get("endpoint") not in LOOKUP_ENDPOINTS


def is_error(status: int) -> bool:
    return status >= 400 and status != CANCELLED
