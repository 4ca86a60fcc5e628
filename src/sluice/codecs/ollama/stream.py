"""Ollama NDJSON streams ⇄ canonical stream events, and Ollama's error shape.

Ollama sends each tool call whole in one line; the encoder therefore buffers tool-call fragments from other
upstreams and emits each answer's calls together when the answer finishes, as Ollama would.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from sluice.canonical import (
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from sluice.codecs.ollama.response import (
    Timings,
    arguments_object,
    calls_from,
    created_at,
    done_fields,
    finish_reason,
    logprobs_entries,
    usage_from,
)
from sluice.errors import SluiceError, UpstreamError


def error_body(error: SluiceError) -> dict[str, str]:
    return {"error": error.message}


def error_line(error: SluiceError) -> bytes:
    return orjson.dumps(error_body(error)) + b"\n"


class NDJSONDecoder:
    """Lines of an Ollama upstream's stream (chat or generate) → canonical events."""

    def __init__(self) -> None:
        self.complete = False
        self._started = False
        self._calls = 0

    def decode(self, line: bytes) -> list[StreamEvent]:
        try:
            chunk = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream line that is not valid JSON.") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a stream line that is not a JSON object.")
        if chunk.get("error"):
            raise UpstreamError(f"The upstream reported an error mid-stream: {chunk['error']}")
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(StreamStart("ollama-" + os.urandom(8).hex(), str(chunk.get("model") or ""), int(time.time())))
        message = chunk.get("message") if isinstance(chunk.get("message"), dict) else {}
        thinking = message.get("thinking") if message else chunk.get("thinking")
        if isinstance(thinking, str) and thinking:
            events.append(ReasoningDelta(thinking))
        text = message.get("content") if message else chunk.get("response")
        if isinstance(text, str) and text:
            events.append(TextDelta(text))
        for call in calls_from(message.get("tool_calls") if message else None):
            events.append(ToolCallDelta(self._calls, call.arguments, f"call_{self._calls}", call.name))
            self._calls += 1
        if chunk.get("done"):
            self.complete = True
            events.append(Finish(finish_reason(chunk, self._calls > 0)))
            usage = usage_from(chunk)
            if usage is not None:
                events.append(UsageUpdate(usage))
        return events


class LineEncoder:
    """Canonical events → Ollama NDJSON lines for a chat (``mode="chat"``) or generate client."""

    def __init__(self, model: str, mode: str = "chat") -> None:
        self.model = model
        self.chat = mode == "chat"
        self.usage: Usage | None = None
        self.reason: FinishReason | None = None
        self._calls: dict[int, ToolCall] = {}

    def _line(self, fields: dict[str, Any]) -> bytes:
        return orjson.dumps({"model": self.model, "created_at": created_at(), **fields}) + b"\n"

    def _piece(
        self,
        text: str = "",
        thinking: str | None = None,
        calls: list[ToolCall] | None = None,
        logprobs: list[Any] | None = None,
    ) -> bytes:
        extra: dict[str, Any] = {"logprobs": logprobs} if logprobs is not None else {}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking is not None:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": arguments_object(c.arguments)}} for c in calls
                ]
            return self._line({"message": message, **extra, "done": False})
        fields: dict[str, Any] = {"response": text, **extra, "done": False}
        if thinking is not None:
            fields["thinking"] = thinking
        return self._line(fields)

    def encode(self, event: StreamEvent) -> bytes:
        if getattr(event, "choice", 0):
            return b""  # one answer per Ollama response
        if isinstance(event, TextDelta):
            return self._piece(event.text, logprobs=logprobs_entries(event.logprobs))
        if isinstance(event, ReasoningDelta):
            return self._piece(thinking=event.text)
        if isinstance(event, ToolCallDelta):
            call = self._calls.get(event.index)
            if call is None:
                self._calls[event.index] = ToolCall(
                    event.id or f"call_{event.index}", event.name or "", event.arguments
                )
            else:
                call.arguments += event.arguments
            return b""
        if isinstance(event, Finish):
            self.reason = event.reason
            return b""
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
        return b""

    def close(self, timings: Timings) -> bytes:
        """Buffered tool calls (in one line, as Ollama sends them) and the final ``done`` line."""
        out = b""
        if self._calls and self.chat:
            out += self._piece(calls=[self._calls[i] for i in sorted(self._calls)])
        empty: dict[str, Any] = {"message": {"role": "assistant", "content": ""}} if self.chat else {"response": ""}
        return out + self._line({**empty, **done_fields(self.usage, self.reason, timings)})
