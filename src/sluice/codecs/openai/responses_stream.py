"""Canonical stream events → the Responses API's typed event stream, every event with its ``sequence_number``.

The sequence for one answer: ``response.created``, ``response.in_progress``; then per output item
``response.output_item.added``, its content (``response.content_part.added``, ``response.output_text.delta`` ...
``response.output_text.done``, ``response.content_part.done``; or ``response.reasoning_text.delta`` ...
``.done``; or ``response.function_call_arguments.delta`` ... ``.done``) and ``response.output_item.done``; and last
``response.completed`` (or ``response.incomplete``) carrying the whole Response. A failure mid-way ends the stream
with an ``error`` event and ``response.failed``, never as if it had completed.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import (
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from sluice.codecs.framing import sse_frame
from sluice.codecs.openai.responses_object import (
    ResponseEnvelope,
    call_item,
    message_item,
    reasoning_item,
    status_for,
    text_part,
)
from sluice.errors import SluiceError


class ResponseEventEncoder:
    """One Response's events; :meth:`close` (or :meth:`fail`) ends the stream and returns the final object."""

    def __init__(self, envelope: ResponseEnvelope) -> None:
        self.envelope = envelope
        self.usage: Usage | None = None
        self.reason: FinishReason | None = None
        self.output: list[dict[str, Any]] = []  # finished items, in order
        self.final: dict[str, Any] | None = None
        self._sequence = 0
        self._started = False
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._text = ""  # its text, reasoning text or arguments so far
        self._calls = 0

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        body = {"type": kind, **payload, "sequence_number": self._sequence}
        self._sequence += 1
        return sse_frame(orjson.dumps(body), kind)

    def start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        snapshot = self.envelope.render([], "in_progress")
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def encode(self, event: StreamEvent) -> bytes:
        if getattr(event, "choice", 0):
            return b""  # a Response has one answer
        out = self.start()
        if isinstance(event, TextDelta):
            if self._open is None or self._open["type"] != "message":
                out += self._open_item(message_item(self.envelope.item_id("msg"), None, "in_progress"))
                out += self._event("response.content_part.added", {**self._where(), "part": text_part("")})
            self._text += event.text
            return out + self._event(
                "response.output_text.delta", {**self._where(), "delta": event.text, "logprobs": []}
            )
        if isinstance(event, ReasoningDelta):
            if self._open is None or self._open["type"] != "reasoning":
                out += self._open_item(reasoning_item(self.envelope.item_id("rs"), "", "in_progress"))
            self._text += event.text
            return out + self._event("response.reasoning_text.delta", {**self._where(), "delta": event.text})
        if isinstance(event, ToolCallDelta):
            if event.id is not None or self._open is None or self._open["type"] != "function_call":
                call = ToolCall(event.id or f"call_{self._calls}", event.name or "", "")
                item_id = self.envelope.item_id("fc", f"_{self._calls}")
                self._calls += 1
                out += self._open_item(call_item(item_id, call, "in_progress"))
            if event.arguments:
                self._text += event.arguments
                out += self._event(
                    "response.function_call_arguments.delta",
                    {"item_id": self._item_id(), "output_index": len(self.output), "delta": event.arguments},
                )
            return out
        if isinstance(event, Finish):
            self.reason = event.reason
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        return out

    def _item_id(self) -> str:
        return str(self._open["id"]) if self._open is not None else ""

    def _where(self) -> dict[str, Any]:
        return {"item_id": self._item_id(), "output_index": len(self.output), "content_index": 0}

    def _open_item(self, item: dict[str, Any]) -> bytes:
        out = self._close_item()
        self._open, self._text = item, ""
        return out + self._event("response.output_item.added", {"output_index": len(self.output), "item": item})

    def _close_item(self, status: str = "completed") -> bytes:
        item = self._open
        if item is None:
            return b""
        out = b""
        if item["type"] == "message":
            done = message_item(item["id"], self._text, status)
            out += self._event(
                "response.output_text.done", {**self._where(), "text": self._text, "logprobs": []}
            ) + self._event("response.content_part.done", {**self._where(), "part": text_part(self._text)})
        elif item["type"] == "reasoning":
            done = reasoning_item(item["id"], self._text, status)
            out += self._event("response.reasoning_text.done", {**self._where(), "text": self._text})
        else:
            done = {**item, "arguments": self._text, "status": status}
            out += self._event(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": len(self.output),
                    "name": item["name"],
                    "arguments": self._text,
                },
            )
        out += self._event("response.output_item.done", {"output_index": len(self.output), "item": done})
        self.output.append(done)
        self._open, self._text = None, ""
        return out

    def close(self) -> bytes:
        """The open item's closing events and ``response.completed`` (``response.incomplete`` when cut short)."""
        status = status_for(self.reason)
        out = self.start()
        if not self.output and self._open is None:
            out += self._open_item(message_item(self.envelope.item_id("msg"), None, "in_progress"))
            out += self._event("response.content_part.added", {**self._where(), "part": text_part("")})
        out += self._close_item("incomplete" if status == "incomplete" and self._open is not None else "completed")
        self.final = self.envelope.render(self.output, status, self.usage or Usage(), self.reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": self.final})

    def fail(self, error: SluiceError) -> bytes:
        """An ``error`` event and ``response.failed`` (what was generated so far stays in the output)."""
        out = self.start() + self._close_item("incomplete")
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        out += self._event("error", {"code": error.code or code, "message": error.message, "param": error.param})
        self.final = self.envelope.render(
            self.output, "failed", self.usage, self.reason, {"code": code, "message": error.message}
        )
        return out + self._event("response.failed", {"response": self.final})
