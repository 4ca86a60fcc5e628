"""Anthropic streaming: the ``message_start`` … ``message_stop`` event sequence ⇄ canonical stream events."""

from __future__ import annotations

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
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from sluice.codecs.anthropic.errors import error_frame
from sluice.codecs.anthropic.response import FINISH_TO_STOP, STOP_REASONS, usage_from, usage_to
from sluice.codecs.framing import sse_frame
from sluice.errors import UpstreamError

__all__ = ["MessageEventDecoder", "MessageEventEncoder", "error_frame"]


class MessageEventDecoder:
    """An Anthropic upstream's SSE events → canonical events; raises on ``event: error`` and bad JSON."""

    def __init__(self, json_tool: str | None = None) -> None:
        self.complete = False
        self._blocks: dict[int, tuple[str, int]] = {}  # block index → (kind, tool-call index)
        self._tools = 0
        self._usage: Usage | None = None
        self._json_tool = json_tool  # the JSON-mode fallback's tool: its input is the answer's text

    def decode(self, event: str | None, data: bytes) -> list[StreamEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream sent a stream event that is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamError("The upstream sent a stream event that is not a JSON object.")
        kind = payload.get("type") or event
        handler = _HANDLERS.get(str(kind))
        if handler is None:
            return []  # ping, and event types added later that carry nothing we translate
        return handler(self, payload)

    def _message_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        message = payload.get("message") or {}
        events: list[StreamEvent] = [
            StreamStart(str(message.get("id") or ""), str(message.get("model") or ""), int(time.time()))
        ]
        usage = usage_from(message.get("usage"))
        if usage is not None:
            usage.completion_tokens = 0  # message_start's output count is a placeholder
            self._usage = usage
            events.append(UsageUpdate(usage))
        return events

    def _block_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index = int(payload.get("index") or 0)
        block = payload.get("content_block") or {}
        kind = str(block.get("type"))
        if kind == "tool_use" and self._json_tool is not None and block.get("name") == self._json_tool:
            self._blocks[index] = ("json", -1)
            return []
        if kind == "tool_use":
            self._blocks[index] = ("tool_use", self._tools)
            self._tools += 1
            return [ToolCallDelta(self._blocks[index][1], "", str(block.get("id") or ""), str(block.get("name") or ""))]
        self._blocks[index] = (kind, -1)
        if kind == "text" and block.get("text"):
            return [TextDelta(str(block["text"]))]
        if kind == "thinking" and block.get("thinking"):
            return [ReasoningDelta(str(block["thinking"]))]
        return []

    def _block_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(str(delta.get("text") or ""))]
        if kind == "input_json_delta":
            block, tool = self._blocks.get(int(payload.get("index") or 0), ("tool_use", max(0, self._tools - 1)))
            if block == "json":
                return [TextDelta(str(delta.get("partial_json") or ""))]
            return [ToolCallDelta(tool, str(delta.get("partial_json") or ""))]
        if kind == "thinking_delta":
            return [ReasoningDelta(str(delta.get("thinking") or ""))]
        return []  # signature_delta, citations

    def _message_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta") or {}
        events: list[StreamEvent] = []
        reason: FinishReason = STOP_REASONS.get(str(delta.get("stop_reason")), "stop")
        if reason == "tool_calls" and self._tools == 0 and ("json", -1) in self._blocks.values():
            reason = "stop"  # only the JSON-mode tool was called
        events.append(Finish(reason))
        raw = payload.get("usage")
        if isinstance(raw, dict):
            update = usage_from({**_earlier(self._usage), **{k: v for k, v in raw.items() if v is not None}})
            if update is not None:
                self._usage = update
                events.append(UsageUpdate(update))
        return events

    def _message_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self.complete = True
        return []

    def _error(self, payload: dict[str, Any]) -> list[StreamEvent]:
        error = payload.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamError(f"The upstream reported an error mid-stream: {message or 'unknown error'}")


def _earlier(usage: Usage | None) -> dict[str, int]:
    """The counts message_start reported, in Anthropic's terms, for message_delta to update."""
    if usage is None:
        return {}
    return {"input_tokens": usage.prompt_tokens - usage.cached_tokens, "cache_read_input_tokens": usage.cached_tokens}


_HANDLERS = {
    "message_start": MessageEventDecoder._message_start,
    "content_block_start": MessageEventDecoder._block_start,
    "content_block_delta": MessageEventDecoder._block_delta,
    "message_delta": MessageEventDecoder._message_delta,
    "message_stop": MessageEventDecoder._message_stop,
    "error": MessageEventDecoder._error,
}


class MessageEventEncoder:
    """Canonical events → Anthropic's event sequence, for an Anthropic client of a translated stream."""

    def __init__(self, message_id: str, model: str, input_tokens: int = 0) -> None:
        self.message_id = message_id
        self.model = model
        self.input_tokens = input_tokens
        self.usage: Usage | None = None
        self.reason: FinishReason = "stop"
        self._started = False
        self._open: tuple[str, int] | None = None  # (kind, tool index) of the open content block
        self._next_block = 0

    def _frame(self, event: str, payload: dict[str, Any]) -> bytes:
        return sse_frame(orjson.dumps(payload), event)

    def start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
        }
        return self._frame("message_start", {"type": "message_start", "message": message}) + self._frame(
            "ping", {"type": "ping"}
        )

    def _open_block(self, kind: str, tool: int = -1, call_id: str = "", name: str = "") -> bytes:
        out = self._close_block()
        block: dict[str, Any]
        if kind == "text":
            block = {"type": "text", "text": ""}
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        self._open = (kind, tool)
        out += self._frame(
            "content_block_start", {"type": "content_block_start", "index": self._next_block, "content_block": block}
        )
        return out

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        index = self._next_block
        self._next_block += 1
        return self._frame("content_block_stop", {"type": "content_block_stop", "index": index})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._frame(
            "content_block_delta", {"type": "content_block_delta", "index": self._next_block, "delta": delta}
        )

    def encode(self, event: StreamEvent) -> bytes:
        if getattr(event, "choice", 0):
            return b""  # Anthropic has one answer per message
        out = self.start()
        if isinstance(event, TextDelta):
            if self._open is None or self._open[0] != "text":
                out += self._open_block("text")
            return out + self._delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ReasoningDelta):
            if self._open is None or self._open[0] != "thinking":
                out += self._open_block("thinking")
            return out + self._delta({"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, ToolCallDelta):
            if event.id is not None or self._open is None or self._open != ("tool_use", event.index):
                out += self._open_block("tool_use", event.index, event.id or f"toolu_{event.index}", event.name or "")
            if event.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": event.arguments})
            return out
        if isinstance(event, Finish):
            self.reason = event.reason
            return out
        if isinstance(event, UsageUpdate):
            self.usage = event.usage
        return out

    def close(self) -> bytes:
        """The block still open, ``message_delta`` with the stop reason and usage, and ``message_stop``."""
        out = self.start() + self._close_block()
        usage = usage_to(self.usage or Usage(self.input_tokens, 0))
        out += self._frame(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": FINISH_TO_STOP.get(self.reason, "end_turn"), "stop_sequence": None},
                "usage": usage,
            },
        )
        return out + self._frame("message_stop", {"type": "message_stop"})
