"""Pass-through shared by every surface: the client's own body to an upstream of the same format, and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sluice.call import Call
from sluice.errors import UpstreamError
from sluice.pipeline import Gateway
from sluice.providers.http import UpstreamResponse
from sluice.routing.catalog import Deployment, ModelRoute
from sluice.server.exchange import Exchange
from sluice.surfaces.relay import FrameInspector, Frames, relay_frames
from sluice.surfaces.request import Format


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
        upstream = await attempt(dep)
        try:
            body = await upstream.read()
        finally:
            upstream.abort()  # a no-op once read; closes the connection when the read was cut short (issue 16.2)
        read_usage(call, body)
        return body

    if not call.stream:
        answer = await gw.open(call, route, whole)
        await gw.record_and_settle(call)
        call.mark_first_byte()
        await ex.respond(200, answer, content_type)
        return
    upstream = await gw.open(call, route, attempt)
    try:
        await ex.start_stream(200, content_type)
    except BaseException:
        upstream.abort()  # relay_frames never started, so its clean-up will not run
        raise
    await relay_frames(gw, ex, call, upstream, frames(), inspector(), fmt)
