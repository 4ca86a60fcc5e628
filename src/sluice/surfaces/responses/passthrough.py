"""Pass-through of ``/v1/responses`` to an upstream that serves it: usage, the final object and errors read on the way.

The conversation of a ``previous_response_id`` comes from Sluice's own store, so the upstream gets it spelled out
as input items (ids and statuses removed: they name nothing the upstream holds) instead of the id, which only Sluice
knows. Reasoning items of earlier turns are left out: an upstream only takes back the reasoning it encrypted itself.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.call import Call
from sluice.canonical import Usage
from sluice.codecs.framing import sse_frame
from sluice.errors import SluiceError, UpstreamError
from sluice.surfaces.openai.format import OPENAI
from sluice.surfaces.passthrough import whole_answer

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_LIFECYCLE = _FINAL | {"response.created", "response.in_progress", "response.queued"}
_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


def upstream_body(data: dict[str, Any], raw: bytes, history: list[dict[str, Any]] | None, upstream_model: str) -> bytes:
    """The client's body for the upstream: its own bytes when nothing needs changing (the model name usually not)."""
    if history is None and data.get("model") == upstream_model:
        return raw
    body = {**data, "model": upstream_model}
    if history is not None:
        body.pop("previous_response_id", None)
        current = data.get("input")
        items = [{"type": "message", "role": "user", "content": current}] if isinstance(current, str) else current
        body["input"] = [*_replayable(history), *(items or [])]
    return orjson.dumps(body)


def _replayable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in item.items() if k not in ("id", "status")}
        for item in items
        if item.get("type", "message") != "reasoning"
    ]


def usage_of(response: dict[str, Any]) -> Usage | None:
    raw = response.get("usage")
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0), int(cached or 0))


class ResponseReader:
    """Reads a whole answer (:meth:`read_whole`) or each stream frame (:meth:`frame`); keeps the final Response.

    When Sluice spelled out a ``previous_response_id`` as input items, the upstream never saw the id; the answer
    is given it back (``previous``), so the caller sees the Response it asked for.
    """

    __slots__ = ("call", "complete", "final", "previous", "sequence")

    def __init__(self, call: Call, previous: str | None) -> None:
        self.call = call
        self.previous = previous
        self.complete = False
        self.final: dict[str, Any] | None = None
        self.sequence = -1

    def read_whole(self, body: bytes) -> bytes:
        """The whole answer as the caller gets it (checked, usage read, the previous id restored)."""
        parsed = whole_answer(body)
        if parsed.get("error"):
            error = parsed["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(f"The upstream answered with an error: {detail}")
        self._settle(parsed)
        if self.previous is None:
            return body
        parsed["previous_response_id"] = self.previous
        return orjson.dumps(parsed)

    def _settle(self, response: dict[str, Any]) -> None:
        self.final = response
        self.call.usage = usage_of(response)
        self.call.note_response_model(response.get("model"))

    def frame(self, raw: bytes, data: bytes, event: str | None) -> bytes:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream event that is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamError("The upstream sent a stream event that is not a JSON object.")
        if isinstance(payload.get("sequence_number"), int):
            self.sequence = payload["sequence_number"]
        kind = payload.get("type") or event
        if self.previous is not None and kind in _LIFECYCLE and isinstance(payload.get("response"), dict):
            payload["response"]["previous_response_id"] = self.previous
            raw = sse_frame(orjson.dumps(payload), str(kind))
        if kind in _DELTAS and isinstance(payload.get("delta"), str):
            self.call.generated_chars += len(payload["delta"])
        elif kind == "error":
            self.call.fail(UpstreamError(f"The upstream reported an error mid-stream: {payload.get('message')}"))
        elif kind in _FINAL and isinstance(payload.get("response"), dict):
            self.complete = True
            self._settle(payload["response"])
            if kind == "response.failed":
                error = payload["response"].get("error") or {}
                self.call.fail(UpstreamError(f"The upstream's response failed: {error.get('message')}"))
        return raw


class PassthroughFormat:
    """OpenAI's error shape, and a mid-stream failure as the Responses API's own ``error`` event."""

    name = "openai"

    def __init__(self, reader: ResponseReader) -> None:
        self.reader = reader

    def error_response(self, error: SluiceError) -> tuple[int, bytes]:
        return OPENAI.error_response(error)

    def stream_error(self, error: SluiceError) -> bytes:
        self.reader.sequence += 1
        event = {
            "type": "error",
            "code": error.code or "server_error",
            "message": error.message,
            "param": error.param,
            "sequence_number": self.reader.sequence,
        }
        return sse_frame(orjson.dumps(event), "error")
