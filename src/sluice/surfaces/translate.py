"""The translated path (client format ≠ upstream format), written once for every surface.

:func:`answer_translated` sends a canonical request to the route's upstream and writes the answer, whole or as a
stream, in the client's format through the surface's :class:`Rendering`; the helpers below it keep the call's
usage and model current on the way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, Protocol, TypeVar

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_text_tokens
from sluice.call import Call
from sluice.canonical import (
    ChatRequest,
    ChatResponse,
    ReasoningDelta,
    StreamEvent,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
    merge_usage,
)
from sluice.pipeline import Gateway
from sluice.routing.catalog import Deployment, ModelRoute
from sluice.server.exchange import Exchange
from sluice.surfaces.relay import relay_events
from sluice.surfaces.request import Format

OpenedStream = tuple[AsyncIterator[StreamEvent], StreamEvent | None]


class StreamEncoder(Protocol):
    """A format's encoder for a translated stream (``codecs/<format>/stream.py``), as the shared path drives it."""

    usage: Usage | None

    def encode(self, event: StreamEvent) -> bytes: ...


E = TypeVar("E", bound=StreamEncoder)


class Rendering(Protocol[E]):
    """How one surface writes a translated answer in its own format: whole, or as a stream."""

    fmt: Format
    stream_type: bytes  # the stream's content type

    def whole(self, call: Call, resp: ChatResponse, model: str) -> dict[str, Any]:
        """The non-streamed answer's body (``resp.usage`` is the call's; ``model`` the name it answers with)."""
        ...

    def encoder(self, call: Call, req: ChatRequest, model: str) -> E: ...

    def opening(self, encoder: E) -> bytes:
        """What the stream starts with before the first event (often nothing)."""
        ...

    def closing(self, encoder: E, call: Call) -> bytes:
        """What ends the stream, once the call is recorded and settled."""
        ...


async def answer_translated(
    gw: Gateway, ex: Exchange, call: Call, route: ModelRoute, req: ChatRequest, rendering: Rendering[Any]
) -> None:
    """Ask the route's upstream in the canonical form and answer in the client's format, whole or streamed."""
    if not req.stream:
        resp = await gw.open(call, route, lambda dep: dep.provider.chat(req, dep.target))
        call.usage = response_usage(req, resp)
        call.note_response_model(resp.model)
        resp.usage = call.usage
        await gw.record_and_settle(call)
        call.mark_first_byte()
        await ex.respond(200, orjson.dumps(rendering.whole(call, resp, answer_model(call, resp.model))))
        return
    opened: OpenedStream = await gw.open(call, route, stream_opener(req))  # type: ignore[arg-type]
    encoder = rendering.encoder(call, req, stream_model(call, opened))
    await ex.start_stream(200, rendering.stream_type)
    await relay_events(ex, call, _encoded(gw, call, rendering, encoder, tally(call, req, opened)), rendering.fmt)


async def _encoded(
    gw: Gateway, call: Call, rendering: Rendering[E], encoder: E, events: AsyncIterator[StreamEvent]
) -> AsyncIterator[bytes]:
    yield rendering.opening(encoder)
    async for event in events:
        yield encoder.encode(event)
    encoder.usage = call.usage
    await gw.record_and_settle(call)  # before the stream's end: a finished answer always has its record
    yield rendering.closing(encoder, call)


def stream_opener(req: ChatRequest) -> Callable[[Deployment], object]:
    async def attempt(dep: Deployment) -> OpenedStream:
        """Start the provider's stream and wait for its first event, so failures happen before any byte."""
        events = dep.provider.stream(req, dep.target)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            return events, None
        except BaseException:
            await events.aclose()  # type: ignore[attr-defined]
            raise
        return events, first

    return attempt


async def tally(call: Call, req: ChatRequest, opened: OpenedStream) -> AsyncIterator[StreamEvent]:
    """Yield a provider's events while keeping the call's usage current.

    When the upstream reports no usage at all, the call is billed an estimate, marked as estimated. The
    provider's generator is always closed, so its upstream connection is released even on cancellation.
    """
    events, first = opened
    if isinstance(first, StreamStart):
        call.note_response_model(first.model)
    async with aclosing(events):  # type: ignore[type-var]
        if first is not None:
            yield first
        while True:
            waited = time.perf_counter()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                break
            finally:
                call.upstream_wait += time.perf_counter() - waited
            if isinstance(event, TextDelta | ReasoningDelta):
                call.generated_chars += len(event.text)
            elif isinstance(event, ToolCallDelta):
                call.generated_chars += len(event.arguments) + len(event.name or "")
            elif isinstance(event, UsageUpdate):
                call.usage = merge_usage(call.usage, event.usage)
            yield event
        if call.usage is None or call.usage.estimated:
            call.usage = Usage(estimate_prompt_tokens(req), (call.generated_chars + 3) // 4, estimated=True)


def answer_model(call: Call, reported: str) -> str:
    """The ``model`` a translated answer carries: the upstream's own name for it, as pass-through leaves it.

    When the upstream reports none, the deployment's name for the model stands in.
    """
    if reported:
        return reported
    return call.deployment.target.model if call.deployment is not None else call.model or ""


def stream_model(call: Call, opened: OpenedStream) -> str:
    """:func:`answer_model` for a stream, from its first event (each upstream's stream names its model first)."""
    first = opened[1]
    return answer_model(call, first.model if isinstance(first, StreamStart) else "")


def response_usage(req: ChatRequest, resp: ChatResponse) -> Usage:
    """The upstream's usage, or an estimate marked as such."""
    if resp.usage is not None:
        return resp.usage
    completion = 0
    for choice in resp.choices:
        completion += estimate_text_tokens(choice.message.text())
        completion += sum(estimate_text_tokens(c.arguments) for c in choice.message.tool_calls)
    return Usage(estimate_prompt_tokens(req), completion, estimated=True)
