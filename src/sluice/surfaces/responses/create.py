"""``POST /v1/responses``: one answer, passed through or translated, streamed or not, stored when asked."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any, cast

import orjson
import structlog

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_raw_prompt_tokens
from sluice.cache.keys import CacheControl
from sluice.call import Call
from sluice.canonical import ChatRequest
from sluice.codecs.framing import SSEParser
from sluice.codecs.openai.responses_object import (
    ResponseEnvelope,
    input_item_resources,
    output_items,
    status_for,
)
from sluice.codecs.openai.responses_request import check_responses_request, decode_responses_request, input_items_of
from sluice.codecs.openai.responses_stream import ResponseEventEncoder
from sluice.errors import Overloaded, SluiceError
from sluice.pipeline import Gateway
from sluice.routing.catalog import Deployment, ModelRoute
from sluice.server.exchange import SSE, Exchange
from sluice.stored_responses.service import ResponseStore
from sluice.surfaces.cache_replay import take_cache_control, with_cache
from sluice.surfaces.passthrough import forward_same_format
from sluice.surfaces.relay import sse_frames
from sluice.surfaces.request import read_json
from sluice.surfaces.responses.passthrough import PassthroughFormat, ResponseReader, upstream_body
from sluice.surfaces.translate import OpenedStream, answer_model, response_usage, stream_model, stream_opener, tally

log = structlog.get_logger("sluice.responses")


def serves_responses(route: ModelRoute) -> bool:
    return all(d.provider.serves_responses for d in route.deployments)


async def create(gw: Gateway, ex: Exchange, call: Call, store: ResponseStore) -> None:
    principal = await gw.identify(ex, call)
    data, raw = await read_json(gw, ex)
    control, raw = take_cache_control(ex, data, raw)
    route = gw.resolve(call, check_responses_request(data))
    call.stream = data.get("stream") is True
    previous = data.get("previous_response_id")
    history = await store.conversation(principal, previous) if isinstance(previous, str) else None
    keep = data.get("store") is not False
    turn = _Turn(gw, ex, call, route, store, data, raw, history, keep)
    produce: Callable[[], Awaitable[None]]
    if serves_responses(route):
        limit = data.get("max_output_tokens")
        await gw.admit(ex, call, route, lambda: (estimate_raw_prompt_tokens(data), limit))
        produce = turn.passthrough
    else:
        req = decode_responses_request(data, history)
        await gw.admit(ex, call, route, lambda: (estimate_prompt_tokens(req), req.max_tokens))
        produce = partial(turn.translated, req)
    if keep:
        # A stored answer needs its own id and its own row; a cached replay would answer with another's.
        control = CacheControl(enabled=False)
    await with_cache(gw, ex, call, route, data, control, produce)


class _SavingGateway:
    """The gateway, storing the upstream's final Response when the call completes.

    The shared pass-through relay settles the call (``Gateway.record_and_settle``) just before it sends what
    completes the answer; storing there too means the stored copy exists before the caller can name it in its next
    turn.
    """

    def __init__(self, gw: Gateway, turn: _Turn, reader: ResponseReader) -> None:
        self._gw, self._turn, self._reader = gw, turn, reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gw, name)

    async def record_and_settle(self, call: Call) -> None:
        await self._gw.record_and_settle(call)
        if call.error is None:
            await self._turn.save(self._reader.final)


class _Turn:
    """One create call's context, shared by its pass-through and translated paths."""

    def __init__(
        self,
        gw: Gateway,
        ex: Exchange,
        call: Call,
        route: ModelRoute,
        store: ResponseStore,
        data: dict[str, Any],
        raw: bytes,
        history: list[dict[str, Any]] | None,
        keep: bool,
    ) -> None:
        self.gw, self.ex, self.call, self.route, self.store = gw, ex, call, route, store
        self.data, self.raw, self.history, self.keep = data, raw, history, keep

    async def save(self, response: dict[str, Any] | None) -> None:
        """Store the answer before its last byte leaves, so the caller can continue from it at once."""
        if not self.keep or response is None or self.call.principal is None or not response.get("id"):
            return
        envelope = ResponseEnvelope(str(response["id"]), "", 0)
        items = input_item_resources(input_items_of(self.data), envelope)
        previous = self.data.get("previous_response_id")
        try:
            await self.store.save(self.call.principal, response, items, previous if isinstance(previous, str) else None)
        except Overloaded as exc:
            # The answer exists and is billed: the caller gets it; only retrieving or continuing from it will fail.
            log.warning("response not stored", response_id=response["id"], error=exc.message)

    # --- pass-through ---------------------------------------------------------------------------------------

    async def passthrough(self) -> None:
        call, ex = self.call, self.ex
        previous = self.data.get("previous_response_id") if self.history is not None else None
        reader = ResponseReader(call, previous if isinstance(previous, str) else None)

        def body_for(dep: Deployment) -> bytes:
            return upstream_body(self.data, self.raw, self.history, dep.target.model)

        if call.stream:
            await forward_same_format(
                cast(Gateway, _SavingGateway(self.gw, self, reader)),
                ex,
                call,
                self.route,
                "/responses",
                body_for,
                content_type=SSE,
                read_usage=lambda _call, _body: None,
                frames=lambda: sse_frames(SSEParser()),
                inspector=lambda: reader,
                fmt=PassthroughFormat(reader),
            )
            return
        call.passthrough = True

        async def whole(dep: Deployment) -> bytes:
            # Read and checked inside the attempt, as every pass-through answer is: a broken one is retried.
            upstream = await dep.provider.forward("/responses", body_for(dep), dep.target, False)
            return reader.read_whole(await upstream.read())

        answer = await self.gw.open(call, self.route, whole)
        await self.gw.record_and_settle(call)
        await self.save(reader.final)
        call.mark_first_byte()
        await ex.respond(200, answer)

    # --- translated -----------------------------------------------------------------------------------------

    async def translated(self, req: ChatRequest) -> None:
        gw, ex, call = self.gw, self.ex, self.call
        response_id = "resp_" + secrets.token_hex(24)
        created = int(time.time())
        if not req.stream:
            resp = await gw.open(call, self.route, lambda dep: dep.provider.chat(req, dep.target))
            call.usage = response_usage(req, resp)
            call.note_response_model(resp.model)
            envelope = ResponseEnvelope(response_id, answer_model(call, resp.model), created, self.data)
            choice = resp.choices[0]
            output = output_items(envelope, choice.message, choice.finish_reason)
            body = envelope.render(output, status_for(choice.finish_reason), call.usage, choice.finish_reason)
            await gw.record_and_settle(call)
            await self.save(body)
            call.mark_first_byte()
            await ex.respond(200, orjson.dumps(body))
            return
        opened: OpenedStream = await gw.open(call, self.route, stream_opener(req))  # type: ignore[arg-type]
        envelope = ResponseEnvelope(response_id, stream_model(call, opened), created, self.data)
        encoder = ResponseEventEncoder(envelope)
        await ex.start_stream(200, SSE)
        try:
            # Closed at once whatever ends the loop (a client gone mid-write too), so the upstream is let go.
            async with aclosing(self._events(encoder, tally(call, req, opened))) as pieces:
                async for piece in pieces:
                    if piece:
                        call.mark_first_byte()
                        await ex.write(piece)
        except SluiceError as err:
            call.fail(err)
            await ex.write(encoder.fail(err))
        await ex.end_stream()

    async def _events(self, encoder: ResponseEventEncoder, events: AsyncIterator[Any]) -> AsyncGenerator[bytes, None]:
        yield encoder.start()
        async for event in events:
            yield encoder.encode(event)
        encoder.usage = self.call.usage
        await self.gw.record_and_settle(self.call)  # before response.completed: a finished answer always has its record
        closing = encoder.close()
        await self.save(encoder.final)
        yield closing
