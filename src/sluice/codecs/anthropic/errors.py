"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}`` with Anthropic's statuses."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.codecs.framing import sse_frame
from sluice.errors import SluiceError

_TYPES = {
    "invalid_request": "invalid_request_error",
    "unsupported": "invalid_request_error",
    "upstream_rejected": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "budget_exceeded": "permission_error",
    "not_found": "not_found_error",
    "payload_too_large": "request_too_large",
    "headers_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
}


def error_type(error: SluiceError) -> str:
    return _TYPES.get(error.kind, "api_error")


def error_status(error: SluiceError) -> int:
    # Anthropic signals overload with its own 529; budgets are a permission matter (403).
    if error.kind == "overloaded":
        return 529
    return error.status


def error_body(error: SluiceError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(error), "message": error.message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_frame(error: SluiceError) -> bytes:
    """A mid-stream ``event: error``, which the Anthropic SDK raises as an APIError."""
    return sse_frame(orjson.dumps(error_body(error)), "error")
