"""One usage record per request, built from the finished Call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.call import Call


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def build_record(call: Call, cost_nanos: int, finished: float) -> dict[str, Any]:
    """The record as plain JSON-able values for the spool (times as epoch seconds; converted when shipped)."""
    principal = call.principal
    usage = call.usage
    deployment = call.deployment
    latency = finished - call.started
    overhead = call.overhead(finished)
    return {
        "id": call.usage_id,
        "request_id": call.request_id,
        "created_ts": call.arrived_at,
        "finished_ts": call.arrived_at + latency,
        "principal_kind": principal.kind if principal else "anonymous",
        "key_id": principal.key_id if principal else None,
        "user_id": principal.user_id if principal else None,
        "workspace_id": principal.workspace_id if principal else None,
        "surface": call.surface,
        "endpoint": call.endpoint,
        "model": call.model,
        "deployment": deployment.id if deployment else None,
        "provider": deployment.provider.name if deployment else None,
        "upstream_model": deployment.target.model if deployment else None,
        "stream": call.stream,
        "status": 499 if call.cancelled else call.status,
        "error_type": call.error.kind if call.error else ("cancelled" if call.cancelled else None),
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "cached_tokens": usage.cached_tokens if usage else 0,
        "estimated": bool(usage and usage.estimated),
        "cost_nanos": cost_nanos,
        "cache_hit": call.cache_hit,
        "queue_wait_ms": _ms(call.queue_wait) or 0.0,
        "ttft_ms": _ms(call.first_byte_at - call.started) if call.first_byte_at else None,
        "latency_ms": _ms(latency) or 0.0,
        "overhead_ms": _ms(overhead),
    }
