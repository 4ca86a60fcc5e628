"""Shared helpers for the translated path (client format ≠ upstream format), used by every surface."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_text_tokens
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
from sluice.pipeline import Call
from sluice.routing.catalog import Deployment

OpenedStream = tuple[AsyncIterator[StreamEvent], StreamEvent | None]


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
