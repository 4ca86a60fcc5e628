"""Pass-through to Anthropic upstreams: usage and completeness read from the event stream as it passes."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.call import Call
from sluice.canonical import Usage
from sluice.codecs.anthropic.response import usage_from
from sluice.errors import UpstreamError
from sluice.surfaces.passthrough import whole_answer


def read_usage(call: Call, body: bytes) -> None:
    """Usage from a complete (non-stream) Anthropic message, which must be a JSON object and not an error."""
    parsed = whole_answer(body)
    if parsed.get("type") == "error":
        error = parsed.get("error")
        detail = error.get("message") if isinstance(error, dict) else error
        raise UpstreamError(f"The upstream answered with an error: {detail}")
    call.usage = usage_from(parsed.get("usage"))
    call.note_response_model(parsed.get("model"))
    if call.usage is None:  # billed Sluice's estimate of the answer instead (marked estimated)
        for block in parsed.get("content") or ():
            if isinstance(block, dict):
                call.generated_chars += _block_chars(block)


def _block_chars(block: dict[str, Any]) -> int:
    """How much answer one content block carries (text, thinking, tool input)."""
    for key in ("text", "thinking"):
        if isinstance(block.get(key), str):
            return len(block[key])
    if block.get("type") == "tool_use":
        return len(orjson.dumps(block.get("input") or {}))
    return 0


class EventInspector:
    """Watches Anthropic's event stream: ``message_start`` and ``message_delta`` usage, ``error``, ``message_stop``."""

    __slots__ = ("call", "complete")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.complete = False

    def frame(self, raw: bytes, data: bytes, event: str | None) -> bytes:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream event that is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamError("The upstream sent a stream event that is not a JSON object.")
        kind = payload.get("type") or event
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            for key in ("text", "partial_json", "thinking"):
                if isinstance(delta.get(key), str):
                    self.call.generated_chars += len(delta[key])
        elif kind == "message_start":
            message = payload.get("message") or {}
            self.call.note_response_model(message.get("model"))
            usage = usage_from(message.get("usage"))
            if usage is not None:
                self.call.usage = Usage(usage.prompt_tokens, 0, usage.cached_tokens)
        elif kind == "message_delta":
            self._delta_usage(payload.get("usage"))
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            error = payload.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else None
            # Already an Anthropic error event: forwarded as it is, and the stream counts as ended.
            self.call.fail(UpstreamError(f"The upstream reported an error mid-stream: {message or 'unknown error'}"))
            self.complete = True
        return raw

    def _delta_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        earlier = self.call.usage or Usage()
        merged = {
            "input_tokens": earlier.prompt_tokens - earlier.cached_tokens,
            "cache_read_input_tokens": earlier.cached_tokens,
            **{k: v for k, v in raw.items() if v is not None},
        }
        self.call.usage = usage_from(merged)
