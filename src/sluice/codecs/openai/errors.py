"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

from sluice.errors import SluiceError

_TYPES = {
    "invalid_request": "invalid_request_error",
    "unsupported": "invalid_request_error",
    "not_found": "invalid_request_error",
    "payload_too_large": "invalid_request_error",
    "headers_too_large": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "rate_limit": "rate_limit_error",
    "budget_exceeded": "insufficient_quota",
    "overloaded": "server_error",
    "upstream_error": "upstream_error",
    "upstream_timeout": "upstream_error",
    "upstream_rejected": "invalid_request_error",
}

_CODES = {
    "authentication": "invalid_api_key",
    "not_found": "model_not_found",
    "payload_too_large": "request_too_large",
    "headers_too_large": "request_header_fields_too_large",
    "rate_limit": "rate_limit_exceeded",
    "budget_exceeded": "insufficient_quota",
    "upstream_timeout": "timeout",
}


def error_body(error: SluiceError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": _TYPES.get(error.kind, "server_error"),
            "param": error.param,
            "code": error.code or _CODES.get(error.kind),
        }
    }


def error_status(error: SluiceError) -> int:
    # OpenAI reports an exhausted quota as 429 insufficient_quota; the SDKs retry nothing on it.
    return 429 if error.kind == "budget_exceeded" else error.status
