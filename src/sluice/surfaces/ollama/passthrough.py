"""Pass-through to Ollama upstreams: usage and completeness read from the NDJSON lines as they pass."""

from __future__ import annotations

import orjson

from sluice.call import Call
from sluice.codecs.ollama.response import usage_from
from sluice.errors import UpstreamError
from sluice.surfaces.passthrough import whole_answer


def read_usage(call: Call, body: bytes) -> None:
    """Usage from a complete (non-stream) Ollama answer, which must be a JSON object and not an error."""
    parsed = whole_answer(body)
    if parsed.get("error"):
        raise UpstreamError(f"The upstream answered with an error: {parsed['error']}")
    call.usage = usage_from(parsed)
    call.note_response_model(parsed.get("model"))
    if call.usage is None:  # billed Sluice's estimate of the answer instead (marked estimated)
        message = parsed.get("message")
        text = message.get("content") if isinstance(message, dict) else parsed.get("response")
        call.generated_chars += len(text) if isinstance(text, str) else 0


class LineInspector:
    """Watches an Ollama NDJSON stream: text for cut-short billing, the ``done`` line's counts, ``error`` lines."""

    __slots__ = ("call", "complete")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.complete = False

    def frame(self, raw: bytes, data: bytes, event: str | None) -> bytes:
        try:
            line = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream line that is not valid JSON.") from None
        if not isinstance(line, dict):
            raise UpstreamError("The upstream sent a stream line that is not a JSON object.")
        if line.get("error"):
            # Already an Ollama error line: forwarded as it is, and the stream counts as ended.
            self.call.fail(UpstreamError(f"The upstream reported an error mid-stream: {line['error']}"))
            self.complete = True
            return raw
        message = line.get("message")
        text = message.get("content") if isinstance(message, dict) else line.get("response")
        if isinstance(text, str):
            self.call.generated_chars += len(text)
        if line.get("done"):
            self.call.usage = usage_from(line)
            self.call.note_response_model(line.get("model"))
            self.complete = True
        return raw
