"""Ollama responses (chat, generate, embed) ⇄ canonical responses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from sluice.canonical import ChatResponse, Choice, EmbedResponse, FinishReason, Message, TextPart, ToolCall, Usage
from sluice.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class Timings:
    """Ollama's duration fields, in nanoseconds, for answers Sluice produced from another upstream."""

    total: int = 0
    load: int = 0
    prompt_eval: int = 0
    eval: int = 0


def created_at(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(epoch if epoch is not None else time.time(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finish_reason(body: dict[str, Any], has_calls: bool) -> FinishReason:
    if has_calls:
        return "tool_calls"
    return "length" if body.get("done_reason") == "length" else "stop"


def usage_from(body: dict[str, Any]) -> Usage | None:
    if body.get("prompt_eval_count") is None and body.get("eval_count") is None:
        return None
    return Usage(int(body.get("prompt_eval_count") or 0), int(body.get("eval_count") or 0))


def calls_from(raw: Any) -> list[ToolCall]:
    calls = []
    for j, entry in enumerate(raw or []):
        fn = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(fn, dict):
            continue
        arguments = fn.get("arguments", {})
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        call_id = entry.get("id") if isinstance(entry.get("id"), str) else f"call_{j}"
        calls.append(ToolCall(call_id, str(fn.get("name") or ""), text))
    return calls


def decode_chat_response(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise UpstreamError("The upstream sent a chat answer without 'message'.")
    raw = body["message"]
    content = raw.get("content") or ""
    calls = calls_from(raw.get("tool_calls"))
    thinking = raw.get("thinking")
    message = Message(
        "assistant",
        [TextPart(content)] if content else [],
        tool_calls=calls,
        reasoning=thinking if isinstance(thinking, str) and thinking else None,
    )
    return ChatResponse(
        id="",
        model=str(body.get("model") or ""),
        created=int(time.time()),
        choices=[Choice(0, message, finish_reason(body, bool(calls)))],
        usage=usage_from(body),
    )


def decode_generate_response(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or "response" not in body:
        raise UpstreamError("The upstream sent a generate answer without 'response'.")
    text = str(body.get("response") or "")
    thinking = body.get("thinking")
    message = Message(
        "assistant",
        [TextPart(text)] if text else [],
        reasoning=thinking if isinstance(thinking, str) and thinking else None,
    )
    return ChatResponse(
        "",
        str(body.get("model") or ""),
        int(time.time()),
        [Choice(0, message, finish_reason(body, False))],
        usage_from(body),
    )


def decode_embed_response(body: Any, model: str) -> EmbedResponse:
    if not isinstance(body, dict) or not isinstance(body.get("embeddings"), list):
        raise UpstreamError("The upstream sent an embed answer without 'embeddings'.")
    vectors = [[float(x) for x in v] for v in body["embeddings"] if isinstance(v, list)]
    return EmbedResponse(str(body.get("model") or model), vectors, Usage(int(body.get("prompt_eval_count") or 0)))


def done_fields(usage: Usage | None, reason: FinishReason | None, timings: Timings) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "done": True,
        "done_reason": "length" if reason == "length" else "stop",
        "total_duration": timings.total,
        "load_duration": timings.load,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": timings.prompt_eval,
        "eval_count": usage.completion_tokens,
        "eval_duration": timings.eval,
    }


def message_of(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.text()}
    if message.reasoning:
        out["thinking"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": arguments_object(c.arguments)}} for c in message.tool_calls
        ]
    return out


def arguments_object(text: str) -> Any:
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}


def logprobs_entries(value: Any) -> list[Any] | None:
    """OpenAI's logprobs object (``{"content": [...]}``) as Ollama's list of per-token entries."""
    content = value.get("content") if isinstance(value, dict) else None
    return content if isinstance(content, list) and content else None


def encode_chat_response(resp: ChatResponse, model: str, timings: Timings) -> dict[str, Any]:
    choice = resp.choices[0] if resp.choices else Choice(0, Message("assistant"))
    body: dict[str, Any] = {"model": model, "created_at": created_at(), "message": message_of(choice.message)}
    entries = logprobs_entries(choice.logprobs)
    if entries is not None:
        body["logprobs"] = entries
    return {**body, **done_fields(resp.usage, choice.finish_reason, timings)}


def encode_generate_response(resp: ChatResponse, model: str, timings: Timings) -> dict[str, Any]:
    choice = resp.choices[0] if resp.choices else Choice(0, Message("assistant"))
    body: dict[str, Any] = {"model": model, "created_at": created_at(), "response": choice.message.text()}
    if choice.message.reasoning:
        body["thinking"] = choice.message.reasoning
    entries = logprobs_entries(choice.logprobs)
    if entries is not None:
        body["logprobs"] = entries
    return {**body, **done_fields(resp.usage, choice.finish_reason, timings)}


def encode_embed_response(resp: EmbedResponse, model: str, timings: Timings) -> dict[str, Any]:
    return {
        "model": model,
        "embeddings": resp.vectors,
        "total_duration": timings.total,
        "load_duration": timings.load,
        "prompt_eval_count": resp.usage.prompt_tokens,
    }


def encode_legacy_embedding_response(resp: EmbedResponse) -> dict[str, Any]:
    return {"embedding": resp.vectors[0] if resp.vectors else []}
