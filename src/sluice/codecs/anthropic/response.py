"""Anthropic ``message`` objects ⇄ canonical :class:`ChatResponse`."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import ChatResponse, Choice, FinishReason, Message, TextPart, ToolCall, Usage
from sluice.errors import UpstreamError

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}


def usage_from(raw: Any) -> Usage | None:
    """Anthropic counts cached input apart from ``input_tokens``; canonical prompt tokens include it."""
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    created = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + cached + created,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=cached,
    )


def usage_to(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def decode_message_response(body: Any, json_tool: str | None = None) -> ChatResponse:
    """A ``message`` as a canonical answer; a call of ``json_tool`` (the JSON-mode fallback) is its JSON text."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise UpstreamError("The upstream sent a message without 'content'.")
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    answered_in_json = False
    for block in body["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            answered_in_json = True
            text.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    str(block.get("id") or ""),
                    str(block.get("name") or ""),
                    orjson.dumps(block.get("input") or {}).decode(),
                )
            )
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking") or ""))
    joined = "".join(text)
    message = Message(
        "assistant", [TextPart(joined)] if joined else [], tool_calls=calls, reasoning="".join(reasoning) or None
    )
    reason = STOP_REASONS.get(str(body.get("stop_reason")), "stop")
    if reason == "tool_calls" and answered_in_json and not calls:
        reason = "stop"  # only the JSON-mode tool was called: to the caller that is a finished answer
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=0,
        choices=[Choice(0, message, reason)],
        usage=usage_from(body.get("usage")),
    )


def encode_message_response(resp: ChatResponse, message_id: str, model: str) -> dict[str, Any]:
    choice = resp.choices[0] if resp.choices else Choice(0, Message("assistant"), "stop")
    content: list[dict[str, Any]] = []
    if choice.message.reasoning:
        content.append({"type": "thinking", "thinking": choice.message.reasoning, "signature": ""})
    if choice.message.text() or not choice.message.tool_calls:
        content.append({"type": "text", "text": choice.message.text()})
    for call in choice.message.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.finish_reason or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to(resp.usage or Usage()),
    }


def _arguments(text: str) -> Any:
    """Tool-call arguments as an object (Anthropic's ``input``); text that is not JSON is kept under ``_raw``."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}
