"""The Ollama-compatible routes: chat, generate, embed, tags, show, ps, version — and model management refused.

Ollama streams NDJSON unless ``stream`` is false. Model management (pull, push, create, copy, delete, blobs) is
refused and never forwarded: a gateway must not let callers change what its model servers hold.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_raw_prompt_tokens, estimate_text_tokens
from sluice.call import Call
from sluice.canonical import ChatRequest, ChatResponse
from sluice.codecs import fields as f
from sluice.codecs.framing import NDJSONParser
from sluice.codecs.ollama.request import (
    check_request,
    decode_chat_request,
    decode_embed_request,
    decode_generate_request,
)
from sluice.codecs.ollama.response import (
    Timings,
    encode_chat_response,
    encode_embed_response,
    encode_generate_response,
    encode_legacy_embedding_response,
)
from sluice.codecs.ollama.stream import LineEncoder
from sluice.errors import PermissionDenied, SluiceError
from sluice.pipeline import Gateway
from sluice.providers.ollama import OllamaProvider
from sluice.routing.catalog import ModelRoute
from sluice.server.exchange import JSON, NDJSON, Exchange
from sluice.surfaces.cache_replay import take_cache_control, with_cache
from sluice.surfaces.ollama.format import OLLAMA
from sluice.surfaces.ollama.passthrough import LineInspector, read_usage
from sluice.surfaces.passthrough import forward_same_format, renamed
from sluice.surfaces.relay import ndjson_frames
from sluice.surfaces.request import Format, read_json, run
from sluice.surfaces.translate import answer_model, answer_translated

# The Ollama release whose API this surface follows; clients read it to decide what they may use.
OLLAMA_API_VERSION = "0.12.0"


# /api/show's capabilities for models Sluice describes itself: what it can carry to the upstream kind, in Ollama's
# words. They say what the format can take, not what one model can do (an OpenAI-compatible text-only model still
# lists "vision"); Ollama-backed models are described by their own server.
_OPENAI_COMPATIBLE = ["completion", "tools", "insert", "vision", "thinking"]
CAPABILITIES = {
    "openai": _OPENAI_COMPATIBLE,
    "azure": _OPENAI_COMPATIBLE,
    "gemini": _OPENAI_COMPATIBLE,
    "anthropic": ["completion", "tools", "vision", "thinking"],
    "mock": ["completion", "tools", "thinking"],
}


def _stream_flag(data: dict[str, Any]) -> bool:
    flag = f.opt_bool(data, "stream")
    return True if flag is None else flag


def _timings(call: Call) -> Timings:
    """Ollama's durations (ns) for an answer Sluice produced from another upstream kind."""
    total = int((time.perf_counter() - call.started) * 1e9)
    first = int(((call.first_byte_at or time.perf_counter()) - call.started) * 1e9)
    return Timings(total=total, load=0, prompt_eval=first, eval=max(0, total - first))


# --- chat and generate ------------------------------------------------------------------------------------------


async def chat(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OLLAMA, "chat", lambda gw, ex, call: _generate(gw, ex, call, "/api/chat"))


async def generate(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OLLAMA, "generate", lambda gw, ex, call: _generate(gw, ex, call, "/api/generate"))


async def _generate(gw: Gateway, ex: Exchange, call: Call, path: str) -> None:
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    control, raw = take_cache_control(ex, data, raw)
    route = gw.resolve(call, check_request(data, chat=path == "/api/chat"))
    call.stream = _stream_flag(data)
    produce: Callable[[], Awaitable[None]]
    if route.speaks("ollama"):
        options = f.opt_obj(data, "options") or {}
        predict = options.get("num_predict") if isinstance(options.get("num_predict"), int) else None
        limit = predict if predict is not None and predict > 0 else None
        await gw.admit(ex, call, route, lambda: (estimate_raw_prompt_tokens(data), limit))
        produce = partial(
            forward_same_format,
            gw,
            ex,
            call,
            route,
            path,
            lambda dep: renamed(data, raw, dep.target.model),
            content_type=NDJSON if call.stream else JSON,
            read_usage=read_usage,
            frames=lambda: ndjson_frames(NDJSONParser()),
            inspector=lambda: LineInspector(call),
            fmt=OLLAMA,
        )
    else:
        req = decode_chat_request(data) if path == "/api/chat" else decode_generate_request(data)
        await gw.admit(ex, call, route, lambda: (estimate_prompt_tokens(req), req.max_tokens))
        produce = partial(answer_translated, gw, ex, call, route, req, _ANSWERS[path])
    await with_cache(gw, ex, call, route, data, control, produce)


class _Answer:
    """A translated answer as Ollama writes it, for ``/api/chat`` or ``/api/generate`` (``mode``)."""

    fmt: Format = OLLAMA
    stream_type = NDJSON

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def whole(self, call: Call, resp: ChatResponse, model: str) -> dict[str, Any]:
        encode = encode_chat_response if self.mode == "chat" else encode_generate_response
        return encode(resp, model, _timings(call))

    def encoder(self, call: Call, req: ChatRequest, model: str) -> LineEncoder:
        return LineEncoder(model, self.mode)

    def opening(self, encoder: LineEncoder) -> bytes:
        return b""

    def closing(self, encoder: LineEncoder, call: Call) -> bytes:
        return encoder.close(_timings(call))  # the done line


_ANSWERS = {"/api/chat": _Answer("chat"), "/api/generate": _Answer("generate")}


# --- embeddings ---------------------------------------------------------------------------------------------------


async def embed(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OLLAMA, "embeddings", lambda gw, ex, call: _embed(gw, ex, call, legacy=False))


async def embeddings(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, OLLAMA, "embeddings", lambda gw, ex, call: _embed(gw, ex, call, legacy=True))


async def _embed(gw: Gateway, ex: Exchange, call: Call, legacy: bool) -> None:
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    req = decode_embed_request(data, legacy)
    route = gw.resolve(call, req.model)
    inputs = req.inputs
    await gw.admit(ex, call, route, lambda: (sum(estimate_text_tokens(t) for t in inputs), 0))
    if route.speaks("ollama"):
        path = "/api/embeddings" if legacy else "/api/embed"
        await forward_same_format(
            gw,
            ex,
            call,
            route,
            path,
            lambda dep: renamed(data, raw, dep.target.model),
            content_type=JSON,
            read_usage=read_usage,
            frames=lambda: ndjson_frames(NDJSONParser()),
            inspector=lambda: LineInspector(call),
            fmt=OLLAMA,
        )
        return
    resp = await gw.open(call, route, lambda dep: dep.provider.embed(req, dep.target))
    call.usage = resp.usage
    await gw.record_and_settle(call)
    call.mark_first_byte()
    model = answer_model(call, resp.model)
    body = encode_legacy_embedding_response(resp) if legacy else encode_embed_response(resp, model, _timings(call))
    await ex.respond(200, orjson.dumps(body))


# --- model information ------------------------------------------------------------------------------------------


def _modified(route: ModelRoute) -> str:
    return datetime.fromtimestamp(route.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _details(route: ModelRoute) -> dict[str, Any]:
    kind = route.deployments[0].provider.kind if route.deployments else "sluice"
    return {
        "parent_model": "",
        "format": kind,
        "family": kind,
        "families": [kind],
        "parameter_size": "",
        "quantization_level": "",
    }


async def tags(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        principal = await gw.identify(ex, call)
        models = [
            {
                "name": r.name,
                "model": r.name,
                "modified_at": _modified(r),
                "size": 0,
                "digest": "",
                "details": _details(r),
            }
            for r in gw.visible_models(principal)
        ]
        await ex.respond(200, orjson.dumps({"models": models}))

    await run(gw, ex, OLLAMA, "models", handler)


async def show(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        await gw.identify(ex, call)
        data, _ = await read_json(gw, ex)
        name = f.opt_str(data, "model") or f.req_str(data, "name", "model")
        route = gw.resolve(call, name)
        deployment = min(route.deployments, key=lambda d: d.order)
        provider = deployment.provider
        if isinstance(provider, OllamaProvider):
            # Read-only, and answered by the real model server for the upstream's own name.
            answer = await provider.post_json("/api/show", {"model": deployment.target.model})
        else:
            answer = {
                "modelfile": "",
                "parameters": "",
                "template": "",
                "details": _details(route),
                "model_info": {},
                "capabilities": CAPABILITIES.get(provider.kind, ["completion"]),
            }
        answer["modified_at"] = _modified(route)
        await ex.respond(200, orjson.dumps(answer))

    await run(gw, ex, OLLAMA, "models", handler)


async def ps(gw: Gateway, ex: Exchange) -> None:
    """Models loaded on the Ollama upstreams, under the public names this caller may use."""

    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        principal = await gw.identify(ex, call)
        running: list[dict[str, Any]] = []
        by_upstream: dict[tuple[str, str], str] = {}
        for route in gw.visible_models(principal):
            for dep in route.deployments:
                if dep.provider.kind == "ollama":
                    by_upstream.setdefault((dep.provider.name, dep.target.model), route.name)
        for provider in gw.catalog.providers.values():
            if not isinstance(provider, OllamaProvider):
                continue
            try:
                answer = await provider.get_json("/api/ps")
            except SluiceError:
                continue  # one Ollama box down does not hide the others
            for entry in answer.get("models", []) if isinstance(answer, dict) else []:
                public = by_upstream.get((provider.name, str(entry.get("name") or entry.get("model"))))
                if public is not None:
                    running.append({**entry, "name": public, "model": public})
        await ex.respond(200, orjson.dumps({"models": running}))

    await run(gw, ex, OLLAMA, "models", handler)


async def version(gw: Gateway, ex: Exchange) -> None:
    """Unauthenticated, as Ollama's is: clients probe it before anything else."""
    await ex.respond(200, orjson.dumps({"version": OLLAMA_API_VERSION}))


async def root(gw: Gateway, ex: Exchange) -> None:
    """Ollama's clients probe ``/`` for "Ollama is running"; a browser (asking for HTML) goes to the web UI."""
    if ex.method == "GET" and gw.settings.ui and b"text/html" in (ex.header(b"accept") or b""):
        await ex.respond(307, b"", b"text/plain; charset=utf-8", [(b"location", b"/ui/")])
        return
    body = b"" if ex.method == "HEAD" else b"Ollama is running"
    await ex.respond(200, body, b"text/plain; charset=utf-8")


async def management(gw: Gateway, ex: Exchange) -> None:
    async def handler(gw: Gateway, ex: Exchange, call: Call) -> None:
        raise PermissionDenied(
            "Model management (pull, push, create, copy, delete, blobs) is not available through Sluice; "
            "ask the gateway's operators to manage models on the model servers."
        )

    await run(gw, ex, OLLAMA, "management", handler)


ROUTES = {
    ("POST", "/api/chat"): chat,
    ("POST", "/api/generate"): generate,
    ("POST", "/api/embed"): embed,
    ("POST", "/api/embeddings"): embeddings,
    ("GET", "/api/tags"): tags,
    ("POST", "/api/show"): show,
    ("GET", "/api/ps"): ps,
    ("GET", "/api/version"): version,
    ("GET", "/"): root,
    ("HEAD", "/"): root,
    ("HEAD", "/api/version"): version,
    **{(method, f"/api/{name}"): management for name in ("pull", "push", "create", "copy") for method in ("POST",)},
    ("DELETE", "/api/delete"): management,
}
PREFIX_ROUTES = {("POST", "/api/blobs/"): management, ("HEAD", "/api/blobs/"): management}
