"""Canonical answers → OpenAI ``Response`` objects and their output items (what ``POST /v1/responses`` returns).

A :class:`ResponseEnvelope` holds what a Response echoes of its request (instructions, tools, tool choice,
sampling settings, metadata, format...) so that the plain answer, each stream event's snapshot and the stored copy
are built by one function, :meth:`ResponseEnvelope.render`. Output item ids are derived from the response id, so
the stream's items and the final object's items are the same items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from sluice.canonical import FinishReason, Message, ToolCall, Usage

Status = Literal["completed", "incomplete", "failed", "in_progress"]
_INCOMPLETE: dict[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(slots=True)
class ResponseEnvelope:
    """The request-derived fields of one Response."""

    id: str
    model: str
    created_at: int
    request: dict[str, Any] = field(default_factory=dict)  # the client's body (what is echoed comes from it)

    def item_id(self, prefix: str, tag: str = "") -> str:
        """An item id derived from the response's (``tag`` tells apart the items of one kind)."""
        return f"{prefix}_{self.id.removeprefix('resp_')}{tag}"

    def render(
        self,
        output: list[dict[str, Any]],
        status: Status,
        usage: Usage | None = None,
        reason: FinishReason | None = None,
        error: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        req = self.request
        incomplete = _INCOMPLETE.get(reason or "") if status == "incomplete" else None
        text: dict[str, Any] = req["text"] if isinstance(req.get("text"), dict) else {}
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": self.model,
            "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
            "previous_response_id": req.get("previous_response_id"),
            "reasoning": _reasoning(req.get("reasoning")),
            "store": req.get("store") is not False,
            "temperature": req.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, **text},
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": [_tool(t) for t in req.get("tools") or () if isinstance(t, dict)],
            "top_p": req.get("top_p", 1.0),
            "truncation": req.get("truncation") or "disabled",
            "metadata": req.get("metadata") or {},
        }
        if usage is not None:  # not nullable in the spec: absent until the answer is complete
            body["usage"] = usage_object(usage)
        if status == "completed":
            body["completed_at"] = int(time.time())
        for key in ("user", "safety_identifier", "prompt_cache_key"):
            if isinstance(req.get(key), str):
                body[key] = req[key]
        return body


def _reasoning(value: Any) -> dict[str, Any]:
    reasoning = value if isinstance(value, dict) else {}
    return {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as a Response lists it (``strict`` and ``parameters`` always present)."""
    if tool.get("type", "function") != "function":
        return tool
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def status_for(reason: FinishReason | None) -> Status:
    return "incomplete" if reason in _INCOMPLETE else "completed"


# --- output items -----------------------------------------------------------------------------------------------


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [text_part(text)] if text is not None else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def output_items(envelope: ResponseEnvelope, message: Message, reason: FinishReason | None) -> list[dict[str, Any]]:
    """A complete answer's output: its reasoning, its text, then its function calls."""
    item_status = "incomplete" if status_for(reason) == "incomplete" else "completed"
    items: list[dict[str, Any]] = []
    if message.reasoning:
        items.append(reasoning_item(envelope.item_id("rs"), message.reasoning))
    text = message.text()
    if text or not message.tool_calls:
        items.append(message_item(envelope.item_id("msg"), text, item_status))
    for index, call in enumerate(message.tool_calls):
        items.append(call_item(envelope.item_id("fc", f"_{index}"), call))
    return items


def input_item_resources(items: list[dict[str, Any]], envelope: ResponseEnvelope) -> list[dict[str, Any]]:
    """A request's input items as ``input_items`` lists them: each with an id and a status, content as parts."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        resource = {**item, "type": kind}
        if kind == "message":
            content = item.get("content")
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            if isinstance(content, str):
                resource["content"] = [{"type": part, "text": content}]
            if item.get("role") == "assistant":
                resource["content"] = [
                    {**c, "annotations": c.get("annotations", []), "logprobs": c.get("logprobs", [])}
                    if isinstance(c, dict) and c.get("type") == "output_text"
                    else c
                    for c in resource["content"]
                ]
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
        resource.setdefault("id", envelope.item_id(prefix.get(kind, "item"), f"_in{index}"))
        resource.setdefault("status", "completed")
        if kind == "reasoning":
            resource.setdefault("summary", [])
        out.append(resource)
    return out
