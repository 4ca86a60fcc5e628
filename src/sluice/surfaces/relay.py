"""Stream relays: an upstream's same-format frames forwarded as they complete, or a translated stream sent on.

Either ends in the client's format: a stream that breaks, stalls or ends without its terminator closes with the
format's error event, never a silent clean stop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from sluice.call import Call
from sluice.codecs.framing import FramingError, NDJSONParser, SSEParser
from sluice.errors import SluiceError, UpstreamError
from sluice.pipeline import Gateway
from sluice.providers.http import UpstreamResponse
from sluice.server.exchange import Exchange
from sluice.surfaces.request import Format

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
                    await gw.record_and_settle(call)
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
