"""The OpenAI-compatible routes: chat completions, completions, embeddings and models."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_raw_prompt_tokens, estimate_text_tokens
from sluice.call import Call
from sluice.canonical import ChatRequest, ChatResponse
from sluice.codecs.framing import SSEParser
from sluice.codecs.openai.chat_request import check_chat_request, decode_chat_request
from sluice.codecs.openai.completion_request import (
    decode_completion_request,
    decode_embedding_request,
    validate_completion_request,
)
from sluice.codecs.openai.responses import (
    encode_chat_response,
    encode_completion_response,
    encode_embedding_response,
)
from sluice.codecs.openai.stream import ChatChunkEncoder
from sluice.errors import NotFound
from sluice.pipeline import Gateway
from sluice.routing.catalog import ModelRoute
from sluice.server.exchange import JSON, SSE, Exchange
from sluice.surfaces.anthropic.format import ANTHROPIC
from sluice.surfaces.cache_replay import take_cache_control, with_cache
from sluice.surfaces.openai.format import OPENAI
from sluice.surfaces.openai.passthrough import SSEInspector, client_wants_usage, read_usage, upstream_body
from sluice.surfaces.openai.queue import queue_status
from sluice.surfaces.passthrough import forward_same_format
from sluice.surfaces.relay import sse_frames
from sluice.surfaces.request import Format, read_json, run
from sluice.surfaces.translate import answer_model, answer_translated

# --- chat completions and legacy completions --------------------------------------------------------------------


class _Answer:
    """A translated answer as OpenAI writes it: a chat completion, or a legacy text completion (``text_mode``)."""

    fmt: Format = OPENAI
    stream_type = SSE

    def __init__(self, text_mode: bool) -> None:
        self.text_mode = text_mode
        self.id_prefix = "cmpl-" if text_mode else "chatcmpl-"

    def whole(self, call: Call, resp: ChatResponse, model: str) -> dict[str, Any]:
        resp.id, resp.model = self.id_prefix + call.request_id, model
        return encode_completion_response(resp) if self.text_mode else encode_chat_response(resp)

    def encoder(self, call: Call, req: ChatRequest, model: str) -> ChatChunkEncoder:
        response_id = self.id_prefix + call.request_id
        return ChatChunkEncoder(response_id, model, int(time.time()), req.include_usage, self.text_mode)

    def opening(self, encoder: ChatChunkEncoder) -> bytes:
        return b""

    def closing(self, encoder: ChatChunkEncoder, call: Call) -> bytes:
        return encoder.close()


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """What differs between ``/v1/chat/completions`` and the legacy ``/v1/completions``."""

    path: str  # the upstream's path
    check: Callable[[dict[str, Any]], str]  # the checks Sluice relies on before forwarding; returns the model
    decode: Callable[[dict[str, Any]], ChatRequest]
    default_max_tokens: int | None  # OpenAI's own default when the body sets none (for the admission estimate)
    answer: _Answer


_CHAT = _Endpoint("/chat/completions", check_chat_request, decode_chat_request, None, _Answer(text_mode=False))
_COMPLETION = _Endpoint(
    "/completions", validate_completion_request, decode_completion_request, 16, _Answer(text_mode=True)
)


async def _generate(endpoint: _Endpoint, gw: Gateway, ex: Exchange, call: Call) -> None:
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    control, raw = take_cache_control(ex, data, raw)
    model = endpoint.check(data)
    route = gw.resolve(call, model)
    call.stream = data.get("stream") is True
    if route.speaks("openai"):
        await gw.admit(ex, call, route, lambda: _raw_estimate(data, endpoint.default_max_tokens))
        produce = partial(_passthrough, gw, ex, call, route, data, raw, endpoint.path)
    else:
        req = endpoint.decode(data)
        await gw.admit(ex, call, route, lambda: _estimate(req))
        produce = partial(answer_translated, gw, ex, call, route, req, endpoint.answer)
    await with_cache(gw, ex, call, route, data, control, produce)


_chat = partial(_generate, _CHAT)
_completion = partial(_generate, _COMPLETION)


async def chat_completions(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OPENAI, "chat", _chat)


async def completions(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OPENAI, "completion", _completion)


def _raw_estimate(data: dict[str, Any], default_max: int | None = None) -> tuple[int, int | None]:
    """(prompt tokens, most output tokens) from the client's JSON, checked by check_chat_request already."""
    limit = data.get("max_completion_tokens") or data.get("max_tokens") or default_max
    n = data.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    return estimate_raw_prompt_tokens(data), limit * choices if isinstance(limit, int) else None


def _estimate(req: ChatRequest) -> tuple[int, int | None]:
    return estimate_prompt_tokens(req), req.max_tokens * req.n if req.max_tokens is not None else None


async def _passthrough(
    gw: Gateway, ex: Exchange, call: Call, route: ModelRoute, data: dict[str, Any], raw: bytes, path: str
) -> None:
    await forward_same_format(
        gw,
        ex,
        call,
        route,
        path,
        lambda dep: upstream_body(data, raw, dep.target.model, call.stream),
        content_type=SSE if call.stream else JSON,
        read_usage=read_usage,
        frames=lambda: sse_frames(SSEParser()),
        inspector=lambda: SSEInspector(call, strip_usage=not client_wants_usage(data)),
        fmt=OPENAI,
    )


# --- embeddings -------------------------------------------------------------------------------------------------


async def embeddings(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OPENAI, "embeddings", _embeddings)


async def _embeddings(gw: Gateway, ex: Exchange, call: Call) -> None:
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    req = decode_embedding_request(data) if not _token_input(data) else None
    model = req.model if req is not None else str(data.get("model"))
    route = gw.resolve(call, model)
    if route.speaks("openai"):
        await gw.admit(ex, call, route, lambda: (estimate_raw_prompt_tokens(data), 0))
        await _passthrough(gw, ex, call, route, data, raw, "/embeddings")
        return
    if req is None:
        req = decode_embedding_request(data)  # raises the clear "token arrays need an OpenAI upstream" error
    inputs = req.inputs
    await gw.admit(ex, call, route, lambda: (sum(estimate_text_tokens(t) for t in inputs), 0))
    resp = await gw.open(call, route, lambda dep: dep.provider.embed(req, dep.target))
    call.usage = resp.usage
    resp.model = answer_model(call, resp.model)
    await gw.record_and_settle(call)
    call.mark_first_byte()
    await ex.respond(200, orjson.dumps(encode_embedding_response(resp, req.encoding_format)))


def _token_input(data: dict[str, Any]) -> bool:
    raw = data.get("input")
    return isinstance(raw, list) and bool(raw) and not all(isinstance(x, str) for x in raw)


# --- models -----------------------------------------------------------------------------------------------------


def _model_object(route: ModelRoute) -> dict[str, Any]:
    return {"id": route.name, "object": "model", "created": route.created, "owned_by": route.owned_by}


def _anthropic_model(route: ModelRoute) -> dict[str, Any]:
    created = datetime.fromtimestamp(route.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": route.name, "display_name": route.name, "created_at": created}


def _wants_anthropic(ex: Exchange) -> bool:
    """``GET /v1/models`` is shared: Anthropic's SDK sends ``anthropic-version`` and expects its own list shape."""
    return ex.header(b"anthropic-version") is not None


def _models_format(ex: Exchange) -> Format:
    """Errors on the shared model routes in the shape of the SDK that asked (its 404 included)."""
    return ANTHROPIC if _wants_anthropic(ex) else OPENAI


async def list_models(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        principal = await gw.identify(ex, call)
        routes = gw.visible_models(principal)
        if _wants_anthropic(ex):
            data = [_anthropic_model(r) for r in routes]
            body = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {"object": "list", "data": [_model_object(r) for r in routes]}
        await ex.respond(200, orjson.dumps(body))

    await run(gw, ex, _models_format(ex), "models", handler)


async def get_model(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        principal = await gw.identify(ex, call)
        name = ex.path.removeprefix("/v1/models/")
        route = gw.catalog.get(name)
        if route is None or not principal.may_use(name):
            raise NotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
        body = _anthropic_model(route) if _wants_anthropic(ex) else _model_object(route)
        await ex.respond(200, orjson.dumps(body))

    await run(gw, ex, _models_format(ex), "models", handler)


ROUTES = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
    ("POST", "/v1/embeddings"): embeddings,
    ("GET", "/v1/models"): list_models,
    ("GET", "/v1/queue"): queue_status,
}
PREFIX_ROUTES = {("GET", "/v1/models/"): get_model}
