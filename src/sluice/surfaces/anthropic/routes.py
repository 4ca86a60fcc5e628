"""The Anthropic-compatible routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_raw_prompt_tokens
from sluice.call import Call
from sluice.canonical import ChatRequest, ChatResponse
from sluice.codecs import fields as f
from sluice.codecs.anthropic.request import decode_messages_request
from sluice.codecs.anthropic.response import encode_message_response
from sluice.codecs.anthropic.stream import MessageEventEncoder
from sluice.codecs.framing import SSEParser
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.errors import SluiceError, UpstreamRejected
from sluice.pipeline import Gateway
from sluice.routing.catalog import Deployment
from sluice.server.exchange import JSON, SSE, Exchange
from sluice.surfaces.anthropic.format import ANTHROPIC
from sluice.surfaces.anthropic.passthrough import EventInspector, read_usage
from sluice.surfaces.cache_replay import take_cache_control, with_cache
from sluice.surfaces.passthrough import forward_same_format, renamed
from sluice.surfaces.relay import sse_frames
from sluice.surfaces.request import Format, read_json, run
from sluice.surfaces.translate import answer_translated

# Client headers an Anthropic upstream gets as they are: the betas a caller opts into, and the API version it
# speaks (otherwise the provider's configured one). Nothing else of the caller's reaches the upstream.
FORWARDED_HEADERS = (b"anthropic-beta", b"anthropic-version")


def client_headers(ex: Exchange) -> dict[str, str] | None:
    headers = {}
    for name in FORWARDED_HEADERS:
        value = ex.header(name)
        if value:
            headers[name.decode()] = value.decode("latin-1")
    return headers or None


def _check(data: dict[str, Any]) -> str:
    """What Sluice itself relies on before forwarding; an Anthropic upstream validates the rest."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    if f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING) is None:
        raise f.missing("max_tokens")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise f.missing("messages") if messages is None else f.bad("messages", "a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise f.bad(f"messages[{i}].role", "'user' or 'assistant'")
    f.opt_bool(data, "stream")
    return model


async def messages(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, ANTHROPIC, "messages", _messages)


async def _messages(gw: Gateway, ex: Exchange, call: Call) -> None:
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    control, raw = take_cache_control(ex, data, raw)
    route = gw.resolve(call, _check(data))
    call.stream = data.get("stream") is True
    produce: Callable[[], Awaitable[None]]
    if route.speaks("anthropic"):
        max_tokens = data.get("max_tokens")
        await gw.admit(ex, call, route, lambda: (estimate_raw_prompt_tokens(data), max_tokens))
        produce = partial(
            forward_same_format,
            gw,
            ex,
            call,
            route,
            "/v1/messages",
            lambda dep: renamed(data, raw, dep.target.model),
            content_type=SSE if call.stream else JSON,
            read_usage=read_usage,
            frames=lambda: sse_frames(SSEParser()),
            inspector=lambda: EventInspector(call),
            fmt=ANTHROPIC,
            headers=client_headers(ex),
        )
    else:
        req = decode_messages_request(data)
        await gw.admit(ex, call, route, lambda: (estimate_prompt_tokens(req), req.max_tokens))
        produce = partial(answer_translated, gw, ex, call, route, req, _ANSWER)
    await with_cache(gw, ex, call, route, data, control, produce)


class _Answer:
    """A translated answer as Anthropic writes it: a message, or its event stream."""

    fmt: Format = ANTHROPIC
    stream_type = SSE

    def whole(self, call: Call, resp: ChatResponse, model: str) -> dict[str, Any]:
        return encode_message_response(resp, "msg_" + call.request_id, model)

    def encoder(self, call: Call, req: ChatRequest, model: str) -> MessageEventEncoder:
        return MessageEventEncoder("msg_" + call.request_id, model, input_tokens=estimate_prompt_tokens(req))

    def opening(self, encoder: MessageEventEncoder) -> bytes:
        return encoder.start()

    def closing(self, encoder: MessageEventEncoder, call: Call) -> bytes:
        return encoder.close()  # message_stop


_ANSWER = _Answer()


# --- count_tokens -----------------------------------------------------------------------------------------------


async def count_tokens(gw: Gateway, ex: Exchange) -> None:
    await run(gw, ex, ANTHROPIC, "count_tokens", _count_tokens)


async def _count_tokens(gw: Gateway, ex: Exchange, call: Call) -> None:
    """Exact from an Anthropic upstream (the body passes through); Sluice's own estimate, marked, for others."""
    await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    route = gw.resolve(call, _check({"max_tokens": 1, **data}))  # count_tokens takes no max_tokens
    deployment = min(route.deployments, key=lambda d: d.order)
    count: int | None = None
    anthropic = deployment.provider.wire_format == "anthropic"
    if anthropic:
        count = await _upstream_count(ex, deployment, renamed(data, raw, deployment.target.model))
    if count is None:
        # What Anthropic takes may be more than Sluice translates (documents, server tools): estimate it raw then.
        if anthropic:
            count = estimate_raw_prompt_tokens(data)
        else:
            count = estimate_prompt_tokens(decode_messages_request({"max_tokens": 1, **data}))
        body: dict[str, Any] = {"input_tokens": count, "estimated": True}
        headers = [(b"x-sluice-estimated", b"true")]
    else:
        body, headers = {"input_tokens": count}, []
    call.mark_first_byte()
    await ex.respond(200, orjson.dumps(body), headers=headers)


async def _upstream_count(ex: Exchange, deployment: Deployment, body: bytes) -> int | None:
    """The Anthropic upstream's own count; None when it cannot count right now (the estimate stands).

    A refusal of the request itself (the upstream's 4xx) is the caller's to see, not papered over by an estimate.
    """
    try:
        upstream = await deployment.provider.forward(
            "/v1/messages/count_tokens", body, deployment.target, False, client_headers(ex)
        )
        answer = orjson.loads(await upstream.read())
    except UpstreamRejected:
        raise
    except (SluiceError, orjson.JSONDecodeError):
        return None
    tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None


ROUTES = {
    ("POST", "/v1/messages"): messages,
    ("POST", "/v1/messages/count_tokens"): count_tokens,
}
