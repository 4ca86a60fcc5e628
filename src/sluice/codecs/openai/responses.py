"""OpenAI response bodies (chat, text completion, embeddings) ⇄ canonical responses."""

from __future__ import annotations

import base64
import struct
from typing import Any

from sluice.canonical import (
    ChatResponse,
    Choice,
    EmbedResponse,
    FinishReason,
    Message,
    TextPart,
    ToolCall,
    Usage,
)
from sluice.errors import UpstreamError

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(value: Any) -> FinishReason | None:
    if value is None:
        return None
    return _FINISH.get(value, "stop")


def usage_to_dict(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def usage_from_dict(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(cached or 0),
    )


# --- chat ------------------------------------------------------------------------------------------------------


def encode_chat_response(resp: ChatResponse) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [_encode_choice(c) for c in resp.choices],
    }
    if resp.system_fingerprint is not None:
        body["system_fingerprint"] = resp.system_fingerprint
    if resp.usage is not None:
        body["usage"] = usage_to_dict(resp.usage)
    return body


def _encode_choice(choice: Choice) -> dict[str, Any]:
    msg = choice.message
    message: dict[str, Any] = {
        "role": "assistant",
        "content": msg.text() if (msg.content or not msg.tool_calls) else None,
        "refusal": None,
    }
    if msg.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in msg.tool_calls
        ]
    if msg.reasoning:
        message["reasoning_content"] = msg.reasoning
    return {
        "index": choice.index,
        "message": message,
        "logprobs": choice.logprobs,
        "finish_reason": choice.finish_reason or "stop",
    }


def decode_chat_response(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError("The upstream sent a chat completion without 'choices'.")
    choices = []
    for i, raw in enumerate(body["choices"]):
        if not isinstance(raw, dict):
            raise UpstreamError("The upstream sent a malformed choice.")
        message = raw.get("message") or {}
        content = message.get("content")
        calls = [
            ToolCall(
                id=str(c.get("id") or f"call_{i}_{j}"),
                name=str((c.get("function") or {}).get("name") or ""),
                arguments=str((c.get("function") or {}).get("arguments") or ""),
            )
            for j, c in enumerate(message.get("tool_calls") or [])
            if isinstance(c, dict)
        ]
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        choices.append(
            Choice(
                index=int(raw.get("index", i)),
                message=Message(
                    role="assistant",
                    content=[TextPart(content)] if isinstance(content, str) and content else [],
                    tool_calls=calls,
                    reasoning=reasoning if isinstance(reasoning, str) else None,
                ),
                finish_reason=finish_reason(raw.get("finish_reason")),
                logprobs=raw.get("logprobs"),
            )
        )
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=int(body.get("created") or 0),
        choices=choices,
        usage=usage_from_dict(body.get("usage")),
        system_fingerprint=body.get("system_fingerprint"),
    )


# --- legacy text completions -----------------------------------------------------------------------------------


def encode_completion_response(resp: ChatResponse) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": resp.id,
        "object": "text_completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [
            {
                "index": c.index,
                "text": c.message.text(),
                "logprobs": c.logprobs,
                "finish_reason": c.finish_reason if c.finish_reason in ("stop", "length", "content_filter") else "stop",
            }
            for c in resp.choices
        ],
    }
    if resp.system_fingerprint is not None:
        body["system_fingerprint"] = resp.system_fingerprint
    if resp.usage is not None:
        body["usage"] = usage_to_dict(resp.usage)
    return body


def decode_completion_response(body: Any) -> ChatResponse:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError("The upstream sent a completion without 'choices'.")
    choices = [
        Choice(
            index=int(raw.get("index", i)),
            message=Message(role="assistant", content=[TextPart(str(raw.get("text") or ""))]),
            finish_reason=finish_reason(raw.get("finish_reason")),
            logprobs=raw.get("logprobs"),
        )
        for i, raw in enumerate(body["choices"])
        if isinstance(raw, dict)
    ]
    return ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=int(body.get("created") or 0),
        choices=choices,
        usage=usage_from_dict(body.get("usage")),
    )


# --- embeddings ------------------------------------------------------------------------------------------------


def encode_embedding_response(resp: EmbedResponse, encoding_format: str = "float") -> dict[str, Any]:
    def vector(values: list[float]) -> Any:
        if encoding_format == "base64":
            return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        return values

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector(v)} for i, v in enumerate(resp.vectors)],
        "model": resp.model,
        "usage": {"prompt_tokens": resp.usage.prompt_tokens, "total_tokens": resp.usage.prompt_tokens},
    }


def decode_embedding_response(body: Any) -> EmbedResponse:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UpstreamError("The upstream sent an embeddings response without 'data'.")
    items = sorted((d for d in body["data"] if isinstance(d, dict)), key=lambda d: int(d.get("index", 0)))
    vectors = []
    for item in items:
        emb = item.get("embedding")
        if isinstance(emb, str):
            raw = base64.b64decode(emb)
            vectors.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
        elif isinstance(emb, list):
            vectors.append([float(x) for x in emb])
        else:
            raise UpstreamError("The upstream sent an embedding that is neither a list nor base64.")
    usage = usage_from_dict(body.get("usage")) or Usage()
    return EmbedResponse(model=str(body.get("model") or ""), vectors=vectors, usage=usage)
