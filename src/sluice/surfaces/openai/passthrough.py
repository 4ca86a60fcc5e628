"""Pass-through to OpenAI-compatible upstreams: minimal body edits, usage read as the stream passes."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.call import Call
from sluice.codecs.openai.responses import usage_from_dict
from sluice.codecs.openai.stream import in_band_error
from sluice.errors import UpstreamError
from sluice.surfaces.passthrough import whole_answer


def upstream_body(data: dict[str, Any], raw: bytes, upstream_model: str, stream: bool) -> bytes:
    """The client's body with only the model name and, for streams, ``include_usage`` changed.

    When nothing needs changing the client's bytes go out untouched (no re-serialisation at all).
    """
    edits: dict[str, Any] = {}
    if data.get("model") != upstream_model:
        edits["model"] = upstream_model
    if stream and not client_wants_usage(data):
        options = data.get("stream_options")
        edits["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    if not edits:
        return raw
    return orjson.dumps({**data, **edits})


def client_wants_usage(data: dict[str, Any]) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def read_usage(call: Call, body: bytes) -> None:
    """Usage from a complete (non-stream) OpenAI response body, which must be a JSON object and not an error."""
    parsed = whole_answer(body)
    error = parsed.get("error")
    if error is not None:
        detail = error.get("message") if isinstance(error, dict) else error
        raise UpstreamError(f"The upstream answered with an error: {detail}")
    call.usage = usage_from_dict(parsed.get("usage"))
    call.note_response_model(parsed.get("model"))
    if call.usage is None:  # billed Sluice's estimate of the answer instead (marked estimated)
        for choice in parsed.get("choices") or ():
            if isinstance(choice, dict):
                message = choice.get("message")
                text = choice.get("text")
                call.generated_chars += _delta_chars(message) if isinstance(message, dict) else 0
                call.generated_chars += len(text) if isinstance(text, str) else 0


class SSEInspector:
    """Watches an OpenAI SSE stream on its way through: usage, in-band errors, the ``[DONE]`` terminator.

    We always ask the upstream for usage; when the client did not, the extra usage-only chunk is dropped so the
    client sees exactly the stream it asked for.
    """

    __slots__ = ("call", "complete", "strip_usage")

    def __init__(self, call: Call, strip_usage: bool) -> None:
        self.call = call
        self.strip_usage = strip_usage
        self.complete = False

    def frame(self, raw: bytes, data: bytes, event: str | None) -> bytes:
        if data == b"[DONE]":
            self.complete = True
            return raw
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream chunk that is not valid JSON.") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a stream chunk that is not a JSON object.")
        if chunk.get("error"):
            # Already an OpenAI error event: forward it as it is and treat the stream as ended.
            self.call.fail(in_band_error(chunk["error"]))
            self.complete = True
            return raw
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                self.call.generated_chars += _delta_chars(delta)
            elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
                self.call.generated_chars += len(choice["text"])
        raw_usage = chunk.get("usage")
        if raw_usage:
            self.call.usage = usage_from_dict(raw_usage)
            self.call.note_response_model(chunk.get("model"))  # the usage chunk names it too: read it once
            if self.strip_usage and not chunk.get("choices"):
                return b""
        return raw


def _delta_chars(delta: dict[str, Any]) -> int:
    """How much answer a delta carries (text and tool-call arguments), for billing a stream cut short."""
    size = len(delta["content"]) if isinstance(delta.get("content"), str) else 0
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            size += len(function["arguments"])
    return size
