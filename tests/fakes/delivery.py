"""How an answer reaches the wire: frame plans, and the code that writes them faithfully or with a fault.

Formats only describe *what* they would send (a `JsonAnswer`, or a `StreamPlan` of encoded frames); everything
about *how* it is sent (pacing, cutting a stream short, aborting the socket, one byte per write) lives here, once,
so every fault means the same thing on every fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from .script import Fault, JsonObject

FrameKind = Literal["head", "chunk", "meta", "end"]

_POLL = 0.02  # how often a pause looks at the socket: a client that left is noticed within ~20 ms
_WHITESPACE = b" " * 256  # what an endless JSON answer sends per interval


def encode_json(value: object) -> bytes:
    """Compact JSON, as the real APIs send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Frame:
    """One encoded stream frame (an SSE event or an NDJSON line).

    kind: "head" is preamble sent before any fault fires (OpenAI's role delta, Anthropic's message_start);
    "chunk" carries content and is what `Fault.after_chunks` counts; "meta" is structure between or after
    chunks (block stops, message_delta); "end" is the terminator that "no_terminator" leaves out.
    """

    data: bytes
    kind: FrameKind = "chunk"


@dataclass(frozen=True)
class StreamPlan:
    """A streamed answer, frame by frame, plus the format's own ways of breaking one."""

    content_type: str
    frames: list[Frame]
    piece: Callable[[str], bytes]
    """Encodes one more text chunk; the "endless" fault sends these after the preamble."""
    error: Callable[[str | None], bytes]
    """The format's in-band error frame (None: the format's usual message)."""
    bad: bytes
    """A frame whose JSON does not parse."""

    def cut(self, after_chunks: int) -> int:
        """The index just after the `after_chunks`-th chunk frame (after the preamble when 0).

        With fewer chunks than asked for, the cut falls after the last chunk, before the closing frames.
        """
        seen = 0
        position = 0
        for index, frame in enumerate(self.frames):
            if frame.kind == "head":
                position = index + 1
            elif frame.kind == "chunk":
                if seen == after_chunks:
                    break
                seen += 1
                position = index + 1
        return position


@dataclass(frozen=True)
class JsonAnswer:
    """A complete (non-streamed) JSON answer."""

    body: JsonObject
    content_type: str = "application/json"

    def encode(self) -> bytes:
        return encode_json(self.body)


Answer = JsonAnswer | StreamPlan


class ClientGone(Exception):
    """The client closed the connection before the answer was finished."""


class Delivery:
    """Writes one answer onto one connection and notices when the client goes away."""

    def __init__(self, request: web.BaseRequest, headers: Mapping[str, str]) -> None:
        self._request = request
        self._headers = dict(headers)
        self.response: web.StreamResponse | None = None

    def check_alive(self) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ClientGone

    async def pause(self, seconds: float) -> None:
        """Sleep for `seconds`, raising ClientGone soon after the client disconnects."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            self.check_alive()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, _POLL))

    async def open(self, content_type: str, *, length: int | None = None) -> None:
        """Send the status line and headers (chunked unless `length` is given)."""
        response = web.StreamResponse(status=200, headers=self._headers)
        response.content_type = content_type
        if length is not None:
            response.content_length = length
        self.response = response
        await response.prepare(self._request)

    async def write(self, data: bytes) -> None:
        self.check_alive()
        assert self.response is not None, "open() first"
        await self.response.write(data)

    async def finish(self) -> web.StreamResponse:
        assert self.response is not None, "open() first"
        await self.response.write_eof()
        return self.response

    def abort(self) -> web.StreamResponse:
        """Drop the TCP connection on the spot (the fake's choice, so it is not recorded as a disconnect)."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()
        return self.response if self.response is not None else web.Response(status=499)


class _Pacer:
    """Applies Reply.chunk_delay between chunk frames (not before the first one)."""

    def __init__(self, delivery: Delivery, gap: float) -> None:
        self._delivery = delivery
        self._gap = gap
        self._started = False

    async def send(self, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.kind == "chunk":
                if self._started and self._gap > 0:
                    await self._delivery.pause(self._gap)
                self._started = True
            await self._delivery.write(frame.data)


async def _write_bytewise(delivery: Delivery, data: bytes) -> None:
    # aiohttp sets TCP_NODELAY and the transport sends at once when its buffer is empty, so each write really
    # leaves as its own tiny segment; yielding lets the loop flush before the next byte.
    for index in range(len(data)):
        await delivery.write(data[index : index + 1])
        await asyncio.sleep(0)


async def play_stream(delivery: Delivery, plan: StreamPlan, gap: float, fault: Fault | None) -> web.StreamResponse:
    """Send a streamed answer, bent by `fault` when one is given."""
    await delivery.open(plan.content_type)
    pacer = _Pacer(delivery, gap)
    if fault is None:
        await pacer.send(plan.frames)
        return await delivery.finish()
    if fault.kind == "fragments":
        await _write_bytewise(delivery, b"".join(frame.data for frame in plan.frames))
        return await delivery.finish()
    if fault.kind == "no_terminator":
        await pacer.send([frame for frame in plan.frames if frame.kind != "end"])
        return await delivery.finish()
    if fault.kind == "endless":
        await pacer.send([frame for frame in plan.frames if frame.kind == "head"])
        count = 0
        while True:  # until the client leaves: write() or pause() raises ClientGone
            await delivery.write(plan.piece(f"{count} "))
            count += 1
            await delivery.pause(fault.interval)
    return await _play_cut(delivery, plan, pacer, fault)


async def _play_cut(delivery: Delivery, plan: StreamPlan, pacer: _Pacer, fault: Fault) -> web.StreamResponse:
    """Faults that strike after `fault.after_chunks` chunks."""
    cut = plan.cut(fault.after_chunks)
    await pacer.send(plan.frames[:cut])
    if fault.kind == "reset_mid_stream":
        return delivery.abort()
    if fault.kind == "bad_json":
        await delivery.write(plan.bad)
    elif fault.kind == "in_band_error":
        await delivery.write(plan.error(fault.message))
    elif fault.kind == "stall":
        await delivery.pause(fault.seconds)
        await pacer.send(plan.frames[cut:])
    else:  # "huge" and anything without a stream-specific meaning: the whole stream
        await pacer.send(plan.frames[cut:])
    return await delivery.finish()


async def play_json(
    delivery: Delivery, answer: JsonAnswer, fault: Fault | None, error_body: bytes
) -> web.StreamResponse:
    """Send a complete JSON answer, bent by `fault` when one is given.

    Stream faults mean the nearest thing for a single body: "reset_mid_stream" drops the socket half-way,
    "bad_json"/"no_terminator" end the body half-way (cleanly), "stall" pauses half-way, "in_band_error" sends
    the format's error body with status 200, "endless" sends whitespace forever.
    """
    data = error_body if fault is not None and fault.kind == "in_band_error" else answer.encode()
    kind = fault.kind if fault is not None else None
    half = len(data) // 2
    if kind in ("bad_json", "no_terminator"):
        await delivery.open(answer.content_type, length=half)
        await delivery.write(data[:half])
        return await delivery.finish()
    if kind == "endless":
        assert fault is not None
        await delivery.open(answer.content_type)
        while True:  # leading whitespace is valid JSON that never completes
            await delivery.write(_WHITESPACE)
            await delivery.pause(fault.interval)
    await delivery.open(answer.content_type, length=len(data))
    if kind == "fragments":
        await _write_bytewise(delivery, data)
    elif kind == "reset_mid_stream":
        await delivery.write(data[:half])
        return delivery.abort()
    elif kind == "stall":
        assert fault is not None
        await delivery.write(data[:half])
        await delivery.pause(fault.seconds)
        await delivery.write(data[half:])
    else:
        await delivery.write(data)
    return await delivery.finish()
