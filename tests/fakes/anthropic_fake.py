"""A fake Anthropic API: messages (with the full SSE event sequence), count_tokens and models."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from aiohttp import web

from .delivery import Answer, Frame, JsonAnswer, StreamPlan, encode_json
from .script import JsonObject, Reply, new_id, split_text
from .server import FakeUpstream

_ARG_PIECE = 8  # characters of tool input JSON per input_json_delta
_SSE = "text/event-stream; charset=utf-8"
_CREATED_AT = "2025-01-01T00:00:00Z"


def _event(payload: JsonObject) -> bytes:
    return f"event: {payload['type']}\n".encode() + b"data: " + encode_json(payload) + b"\n\n"


def _error_type(status: int) -> str:
    """Anthropic's error ``type`` for a status (529 is its "overloaded" status)."""
    named = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    return named.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _error_frame(message: str | None) -> bytes:
    return _event({"type": "error", "error": {"type": "overloaded_error", "message": message or "Overloaded"}})


def _stop(reply: Reply) -> tuple[str, str | None]:
    """stop_reason and stop_sequence."""
    finish = reply.effective_finish
    if finish == "tool_calls":
        return "tool_use", None
    if finish == "length":
        return "max_tokens", None
    if reply.stop_sequence is not None:
        return "stop_sequence", reply.stop_sequence
    return "end_turn", None


def _usage(reply: Reply, output_tokens: int) -> JsonObject:
    # Anthropic's input_tokens leaves out cache reads: total prompt = input + cache_creation + cache_read.
    return {
        "input_tokens": reply.prompt_tokens - reply.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": reply.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _signature(thinking: str) -> str:
    return hashlib.sha256(thinking.encode()).hexdigest()


def _blocks(reply: Reply) -> list[JsonObject]:
    blocks: list[JsonObject] = []
    if reply.thinking is not None:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": _signature(reply.thinking)})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in reply.tool_calls]
    return blocks


def _message(
    reply: Reply, body: JsonObject, content: list[JsonObject], stop: tuple[str | None, str | None]
) -> JsonObject:
    message: JsonObject = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": reply.model or str(body.get("model") or "claude-fake"),
        "content": content,
        "stop_reason": stop[0],
        "stop_sequence": stop[1],
    }
    if reply.usage:
        message["usage"] = _usage(reply, reply.completion_tokens if stop[0] else 1)
    return message


def message(reply: Reply, body: JsonObject) -> JsonObject:
    """A non-streamed ``message`` object."""
    return _message(reply, body, _blocks(reply), _stop(reply))


def _block_events(index: int, block: JsonObject, reply: Reply) -> list[Frame]:
    """content_block_start, its deltas and content_block_stop for one block."""
    kind = block["type"]
    if kind == "thinking":
        start: JsonObject = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in reply.thinking_pieces()]
    elif kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in reply.pieces()]
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        arguments = encode_json(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in split_text(arguments, _ARG_PIECE)]
    frames = [Frame(_event({"type": "content_block_start", "index": index, "content_block": start}), "meta")]
    frames += [Frame(_event({"type": "content_block_delta", "index": index, "delta": d})) for d in deltas]
    if kind == "thinking":
        signature = {"type": "signature_delta", "signature": block["signature"]}
        frames.append(Frame(_event({"type": "content_block_delta", "index": index, "delta": signature}), "meta"))
    frames.append(Frame(_event({"type": "content_block_stop", "index": index}), "meta"))
    return frames


def message_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    """The SSE event sequence of a streamed message, as Anthropic sends it."""
    blocks: list[Frame] = []
    text_index = 0
    for index, block in enumerate(_blocks(reply)):
        blocks += _block_events(index, block, reply)
        if block["type"] == "text":
            text_index = index
    start = _message(reply, body, [], (None, None))
    frames = [Frame(_event({"type": "message_start", "message": start}), "head")]
    if blocks:  # the first block opens before the ping: all of that is preamble
        frames.append(Frame(blocks.pop(0).data, "head"))
    frames.append(Frame(_event({"type": "ping"}), "head"))
    frames += blocks
    stop_reason, stop_sequence = _stop(reply)
    delta: JsonObject = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence}}
    if reply.usage:
        delta["usage"] = {"output_tokens": reply.completion_tokens}
    frames.append(Frame(_event(delta), "meta"))
    frames.append(Frame(_event({"type": "message_stop"}), "end"))

    def piece(text: str) -> bytes:
        return _event(
            {"type": "content_block_delta", "index": text_index, "delta": {"type": "text_delta", "text": text}}
        )

    bad = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",\n\n'
    return StreamPlan(content_type=_SSE, frames=frames, piece=piece, error=_error_frame, bad=bad)


class FakeAnthropic(FakeUpstream):
    """A fake Anthropic API. Point the SDK's ``base_url`` at `url`."""

    default_models: ClassVar[tuple[str, ...]] = ("claude-fake", "claude-fake-haiku")
    generation_paths: ClassVar[frozenset[str]] = frozenset({"/v1/messages"})

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._messages),
            web.post("/v1/messages/count_tokens", self._count_tokens),
            web.get("/v1/models", self._list_models),
            web.get("/v1/models/{model:.+}", self._get_model),
        ]

    def _error_body(self, status: int, message: str) -> JsonObject:
        return {
            "type": "error",
            "error": {"type": _error_type(status), "message": message},
            "request_id": new_id("req_"),
        }

    def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        # The API takes the key as x-api-key or as a Bearer token (recent SDKs send the latter).
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and self.api_key not in (request.headers.get("x-api-key"), bearer):
            return self.error_response(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return self.error_response(400, "anthropic-version: header is required")
        return None

    def _response_headers(self) -> dict[str, str]:
        return {"request-id": new_id("req_")}

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)

        def render(reply: Reply) -> Answer:
            return message_stream(reply, body) if body.get("stream") is True else JsonAnswer(message(reply, body))

        return await self.generate(request, render)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        messages = self.body_of(request).get("messages")
        for i, message in enumerate(messages if isinstance(messages, list) else [None]):
            if not isinstance(message, dict) or "content" not in message:
                return self.error_response(400, f"messages.{i}.content: Field required")
        return self.json_response({"input_tokens": self.reply.prompt_tokens})

    def _model(self, model_id: str) -> JsonObject:
        display = model_id.replace("-", " ").title()
        return {
            "type": "model",
            "id": model_id,
            "display_name": display,
            "created_at": _CREATED_AT,
            "lifecycle": "active",
        }

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        data = [self._model(name) for name in self.models]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return self.json_response({"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model"]
        if model_id not in self.models:
            return self.error_response(404, f"model: {model_id}")
        return self.json_response(self._model(model_id))
