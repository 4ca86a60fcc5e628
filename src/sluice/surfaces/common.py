"""What every surface shares: the per-request wrapper, JSON body reading, and stream relays.

The wrapper guarantees the invariants of the brief for every route: errors leave in the caller's own API shape,
an unexpected exception becomes a 500 in that shape without internals, a vanished client is not an error, and
the call is settled exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson
import structlog

from sluice.cache.keys import HEADER as CACHE_HEADER
from sluice.cache.keys import CacheControl, parse_control
from sluice.cache.service import HIT as CACHE_HIT
from sluice.cache.store import CachedAnswer
from sluice.canonical import Usage
from sluice.codecs.framing import FramingError, NDJSONParser, SSEParser
from sluice.errors import InvalidRequest, SluiceError, UpstreamError, UpstreamTimeout
from sluice.pipeline import Call, Gateway
from sluice.providers.http import UpstreamResponse
from sluice.routing.catalog import Deployment, ModelRoute
from sluice.server.exchange import JSON, ClientGone, Exchange

log = structlog.get_logger("sluice.surface")


class Format(Protocol):
    """How one client-facing API renders errors."""

    name: str

    def error_response(self, error: SluiceError) -> tuple[int, bytes]: ...

    def stream_error(self, error: SluiceError) -> bytes: ...


Handler = Callable[[Gateway, Exchange, Call], Awaitable[None]]


async def run(gw: Gateway, ex: Exchange, fmt: Format, endpoint: str, handler: Handler) -> None:
    call = Call(ex.request_id, fmt.name, endpoint, ex.started)
    if gw.timing_headers:
        ex.header_hook = lambda: gw.response_headers(call)
    try:
        try:
            # The deadline starts unset; Gateway.open moves it to each tried deployment's total timeout.
            async with asyncio.timeout(None) as deadline:
                call.deadline = deadline
                await handler(gw, ex, call)
        except TimeoutError:
            raise UpstreamTimeout("The request exceeded its total deadline.", code="total_timeout") from None
    except SluiceError as err:
        call.fail(err)
        await gw.conclude(call)
        await _send_error(ex, fmt, err)
    except ClientGone:
        call.cancelled = True
    except asyncio.CancelledError:
        if not ex.client_gone:
            raise  # shutdown, not the client: let it propagate
        call.cancelled = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except Exception:
        log.exception("unhandled error", request_id=ex.request_id, surface=fmt.name, endpoint=endpoint)
        internal = SluiceError("The gateway failed to handle this request.", code="internal_error")
        call.fail(internal)
        await gw.conclude(call)
        await _send_error(ex, fmt, internal)
    finally:
        ex.stop_watching()
        await gw.finish(call)


async def _send_error(ex: Exchange, fmt: Format, err: SluiceError) -> None:
    if ex.client_gone or ex.responded:
        return
    if ex.status:
        # The stream had started: end it with the format's error event, never as if it had completed.
        await ex.write(fmt.stream_error(err))
        await ex.end_stream()
        return
    status, body = fmt.error_response(err)
    headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await ex.respond(status, body, headers=headers)


async def read_json(gw: Gateway, ex: Exchange) -> tuple[dict[str, Any], bytes]:
    """Read and parse the JSON object body (returned with its raw bytes), then watch for the client leaving."""
    body = await ex.body(gw.max_body)
    ex.watch_disconnect()
    if not body.strip():
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc.msg}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    if gw.log_prompts:
        # Explicit opt-in only (observability.log_prompts): request bodies hold prompts, never keys.
        log.debug("request body", request_id=ex.request_id, body=data)
    return data, body


Frames = Callable[[bytes], list[tuple[bytes, bytes, str | None]]]


def sse_frames(parser: SSEParser) -> Frames:
    """Upstream bytes → complete SSE events as (raw bytes, data, event name)."""

    def frames(chunk: bytes) -> list[tuple[bytes, bytes, str | None]]:
        try:
            return [(e.raw, e.data, e.event) for e in parser.feed(chunk)]
        except FramingError as exc:
            raise UpstreamError(f"The upstream sent a malformed stream: {exc}.") from None

    return frames


def ndjson_frames(parser: NDJSONParser) -> Frames:
    """Upstream bytes → complete NDJSON lines as (line + newline, line, None)."""

    def frames(chunk: bytes) -> list[tuple[bytes, bytes, str | None]]:
        try:
            return [(line + b"\n", line, None) for line in parser.feed(chunk)]
        except FramingError as exc:
            raise UpstreamError(f"The upstream sent a malformed stream: {exc}.") from None

    return frames


class FrameInspector(Protocol):
    """Looks at each upstream frame of a pass-through stream: records usage, decides what the client gets."""

    complete: bool

    def frame(self, raw: bytes, data: bytes, event: str | None) -> bytes: ...


async def relay_frames(
    gw: Gateway,
    ex: Exchange,
    call: Call,
    upstream: UpstreamResponse,
    frames: Frames,
    inspector: FrameInspector,
    fmt: Format,
) -> None:
    """Forward a same-format upstream stream frame by frame, as each frame completes.

    The frames that complete the answer are held back until the call is settled and recorded, so a client never
    sees a complete answer whose usage could be lost. A stream that breaks, stalls or ends without its
    terminator ends with an error event in the client's format: never a silent clean stop.
    """
    pending: list[bytes] = []
    chunks = upstream.iter_chunks()
    try:
        while True:
            waited = time.perf_counter()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            finally:
                call.upstream_wait += time.perf_counter() - waited
            for raw, data, event in frames(chunk):
                piece = inspector.frame(raw, data, event)
                if piece:
                    pending.append(piece)
            if pending:
                if inspector.complete:
                    await gw.complete(call)
                call.mark_first_byte()
                await ex.write(b"".join(pending))
                pending.clear()
        if not inspector.complete:
            raise UpstreamError("The upstream stream ended before it was complete.", code="truncated_stream")
    except SluiceError as err:
        # Frames that were good before the failure still reach the client, then the error event.
        call.fail(err)
        await ex.write(b"".join(pending) + fmt.stream_error(err))
    finally:
        upstream.abort()
    await ex.end_stream()


async def relay_events(ex: Exchange, call: Call, chunks: AsyncIterator[bytes], fmt: Format) -> None:
    """Send an already-encoded translated stream; an error mid-way ends it with the format's error event."""
    try:
        async for data in chunks:
            if data:
                call.mark_first_byte()
                await ex.write(data)
    except SluiceError as err:
        call.fail(err)
        await ex.write(fmt.stream_error(err))
    await ex.end_stream()


def whole_answer(body: bytes) -> dict[str, Any]:
    """A non-streamed upstream answer as a JSON object; anything else (cut off, garbled) is the upstream's failure."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("The upstream answered with invalid JSON.", code="invalid_upstream_body") from None
    if not isinstance(parsed, dict):
        raise UpstreamError(
            "The upstream answered with something other than a JSON object.", code="invalid_upstream_body"
        )
    return parsed


def renamed(data: dict[str, Any], raw: bytes, upstream_model: str) -> bytes:
    """The client's body for a same-format upstream: only the model name changes (often not even that)."""
    if data.get("model") == upstream_model:
        return raw
    return orjson.dumps({**data, "model": upstream_model})


async def forward_same_format(
    gw: Gateway,
    ex: Exchange,
    call: Call,
    route: ModelRoute,
    path: str,
    body_for: Callable[[Deployment], bytes],
    *,
    content_type: bytes,
    read_usage: Callable[[Call, bytes], None],
    frames: Callable[[], Frames],
    inspector: Callable[[], FrameInspector],
    fmt: Format,
    headers: dict[str, str] | None = None,
) -> None:
    """Pass-through: send the client's own body to an upstream of the same format and relay what comes back.

    ``headers`` are client headers the format lets through (Anthropic's ``anthropic-beta``, for one).

    ``read_usage`` raises :class:`UpstreamError` for a body that is not a complete answer (not JSON, or an
    in-band error object).
    """
    call.passthrough = True

    async def attempt(dep: Deployment) -> UpstreamResponse:
        return await dep.provider.forward(path, body_for(dep), dep.target, call.stream, headers)

    async def whole(dep: Deployment) -> bytes:
        # A non-streamed answer is read and checked inside the attempt: until all of it has arrived nothing has
        # reached the client, so a reset, stall, cut-off or in-band error is retried like any other failure.
        body = await (await attempt(dep)).read()
        read_usage(call, body)
        return body

    if not call.stream:
        answer = await gw.open(call, route, whole)
        await gw.complete(call)
        call.mark_first_byte()
        await ex.respond(200, answer, content_type)
        return
    upstream = await gw.open(call, route, attempt)
    await ex.start_stream(200, content_type)
    await relay_frames(gw, ex, call, upstream, frames(), inspector(), fmt)


def take_cache_control(ex: Exchange, data: dict[str, Any], raw: bytes) -> tuple[CacheControl, bytes]:
    """The request's cache controls; a ``cache`` body field is removed so no upstream ever sees it."""
    control = parse_control(ex.header(CACHE_HEADER), data)
    if "cache" in data:
        del data["cache"]
        raw = orjson.dumps(data)
    return control, raw


async def with_cache(
    gw: Gateway,
    ex: Exchange,
    call: Call,
    route: ModelRoute,
    data: dict[str, Any],
    control: CacheControl,
    produce: Callable[[], Awaitable[None]],
) -> None:
    """Answer from the response cache when it holds this request's answer; otherwise produce it and keep it."""
    cache = gw.cache
    lookup = await cache.lookup(control, call, route, data) if cache is not None else None
    if lookup is not None and lookup.hit is not None:
        await _replay(gw, ex, call, lookup.hit)
        return
    if lookup is not None and lookup.store_ttl is not None:
        ex.recording = []
        ex.response_headers.append((CACHE_HEADER, b"miss"))
    await produce()
    recorded = ex.recording
    ex.recording = None
    if cache is None or lookup is None or recorded is None:
        return
    if ex.status == 200 and call.error is None and not call.cancelled:
        await cache.save(lookup, ex.content_type, recorded, call.usage)


async def _replay(gw: Gateway, ex: Exchange, call: Call, answer: CachedAnswer) -> None:
    """Send a cached answer exactly as it was first sent: as a stream when it was one."""
    call.cache_hit = True
    call.usage = Usage(answer.prompt_tokens, answer.completion_tokens, answer.cached_tokens)
    await gw.complete(call)
    content_type = answer.content_type.encode()
    headers = [CACHE_HIT]
    call.mark_first_byte()
    if len(answer.chunks) == 1 and content_type == JSON:
        await ex.respond(200, answer.chunks[0], content_type, headers)
        return
    await ex.start_stream(200, content_type, headers)
    await ex.write(b"".join(answer.chunks))
    await ex.end_stream()
