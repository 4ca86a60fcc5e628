"""OpenAI streaming: canonical events ⇄ ``chat.completion.chunk`` (and ``text_completion``) SSE frames."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import (
    Finish,
    ReasoningDelta,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from sluice.codecs.framing import sse_frame
from sluice.codecs.openai.responses import finish_reason, usage_from_dict, usage_to_dict
from sluice.errors import SluiceError, UpstreamError

DONE = b"data: [DONE]\n\n"


class ChatChunkEncoder:
    """Canonical events → OpenAI ``chat.completion.chunk`` SSE frames for one response."""

    def __init__(self, response_id: str, model: str, created: int, include_usage: bool, text_mode: bool = False):
        self.id = response_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.text_mode = text_mode  # legacy /v1/completions chunks
        self.usage: Usage | None = None
        self._started: set[int] = set()

    def _chunk(self, choices: list[dict[str, Any]]) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion" if self.text_mode else "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None
        return sse_frame(orjson.dumps(body))

    def _delta(self, choice: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        if self.text_mode:
            item = {
                "index": choice,
                "text": delta.get("content", ""),
                "logprobs": logprobs,
                "finish_reason": finish,
            }
            return self._chunk([item])
        if choice not in self._started:
            self._started.add(choice)
            delta = {"role": "assistant", **delta}
        return self._chunk([{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish}])

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._delta(event.choice, {"content": event.text}, logprobs=event.logprobs)
        if isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
                call["function"]["name"] = event.name or ""
            return b"" if self.text_mode else self._delta(event.choice, {"tool_calls": [call]})
        if isinstance(event, ReasoningDelta):
            return b"" if self.text_mode else self._delta(event.choice, {"reasoning_content": event.text})
        if isinstance(event, Finish):
            reason = event.reason if event.reason != "error" else "stop"
            if self.text_mode and reason == "tool_calls":
                reason = "stop"
            return self._delta(event.choice, {}, finish=reason)
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
            return b""
        if isinstance(event, StreamStart):
            return b""  # the first content delta carries the role; nothing to send yet
        raise TypeError(f"unknown stream event {event!r}")

    def close(self) -> bytes:
        """The usage chunk (when the client asked for it) and the ``[DONE]`` terminator."""
        tail = b""
        if self.include_usage:
            usage = usage_to_dict(self.usage or Usage())
            body: dict[str, Any] = {
                "id": self.id,
                "object": "text_completion" if self.text_mode else "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            }
            tail = sse_frame(orjson.dumps(body))
        return tail + DONE


def error_frame(error: SluiceError) -> bytes:
    """A mid-stream error in the shape the OpenAI SDK raises as ``APIError`` (a data chunk with ``error``)."""
    from sluice.codecs.openai.errors import error_body

    return sse_frame(orjson.dumps(error_body(error)))


class ChatChunkDecoder:
    """OpenAI ``chat.completion.chunk`` (or ``text_completion``) payloads → canonical events."""

    def __init__(self) -> None:
        self.started = False
        self.usage: Usage | None = None

    def decode(self, data: bytes) -> list[StreamEvent]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream chunk that is not valid JSON.") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a stream chunk that is not a JSON object.")
        if chunk.get("error"):
            raise in_band_error(chunk["error"])
        events: list[StreamEvent] = []
        if not self.started:
            self.started = True
            events.append(
                StreamStart(str(chunk.get("id") or ""), str(chunk.get("model") or ""), int(chunk.get("created") or 0))
            )
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                events.extend(_choice_events(choice))
        usage = usage_from_dict(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
            events.append(UsageUpdate(usage))
        return events


def _choice_events(choice: dict[str, Any]) -> list[StreamEvent]:
    index = int(choice.get("index") or 0)
    events: list[StreamEvent] = []
    delta = choice.get("delta")
    if delta is None and "text" in choice:  # text_completion chunk
        delta = {"content": choice.get("text")}
    if isinstance(delta, dict):
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning, index))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content, index, choice.get("logprobs")))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            fn = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    index=int(call.get("index") or 0),
                    arguments=str(fn.get("arguments") or ""),
                    id=call.get("id"),
                    name=fn.get("name") if call.get("id") is not None or fn.get("name") else None,
                    choice=index,
                )
            )
    reason = finish_reason(choice.get("finish_reason"))
    if reason is not None:
        events.append(Finish(reason, index))
    return events


def in_band_error(error: Any) -> UpstreamError:
    message = error.get("message") if isinstance(error, dict) else str(error)
    return UpstreamError(f"The upstream reported an error mid-stream: {message or 'unknown error'}")
