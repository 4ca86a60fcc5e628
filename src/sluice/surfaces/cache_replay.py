"""The response cache at the surface: a request's cache controls, a hit replayed as first sent, a miss kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from sluice.cache.keys import HEADER as CACHE_HEADER
from sluice.cache.keys import CacheControl, parse_control
from sluice.cache.service import HIT as CACHE_HIT
from sluice.cache.store import CachedAnswer
from sluice.call import Call
from sluice.canonical import Usage
from sluice.pipeline import Gateway
from sluice.routing.catalog import ModelRoute
from sluice.server.exchange import JSON, Exchange


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
    await gw.record_and_settle(call)
    content_type = answer.content_type.encode()
    headers = [CACHE_HIT]
    call.mark_first_byte()
    if len(answer.chunks) == 1 and content_type == JSON:
        await ex.respond(200, answer.chunks[0], content_type, headers)
        return
    await ex.start_stream(200, content_type, headers)
    await ex.write(b"".join(answer.chunks))
    await ex.end_stream()
