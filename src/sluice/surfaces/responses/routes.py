"""The Responses API's routes: create, retrieve, delete, input items, cancel and input-token counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_raw_prompt_tokens
from sluice.call import Call
from sluice.codecs import fields as f
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.codecs.openai.responses_request import decode_responses_request
from sluice.errors import InvalidRequest, NotFound, SluiceError, UpstreamRejected
from sluice.pipeline import Gateway
from sluice.server.exchange import Exchange
from sluice.stored_responses.service import ResponseStore
from sluice.surfaces.openai.format import OPENAI
from sluice.surfaces.request import read_json, run
from sluice.surfaces.responses.create import create, serves_responses

PREFIX = "/v1/responses/"
MAX_ITEMS_PAGE = 100

Route = Callable[[Gateway, Exchange], Awaitable[None]]


def routes(store: ResponseStore) -> tuple[dict[tuple[str, str], Route], dict[tuple[str, str], Route]]:
    """(exact routes, prefix routes) of the Responses API, bound to the store."""

    async def create_response(gw: Gateway, ex: Exchange) -> None:
        await run(gw, ex, OPENAI, "responses", lambda gw, ex, call: create(gw, ex, call, store))

    async def count_input_tokens(gw: Gateway, ex: Exchange) -> None:
        await run(gw, ex, OPENAI, "responses_input_tokens", lambda gw, ex, call: _input_tokens(gw, ex, call, store))

    async def read(gw: Gateway, ex: Exchange) -> None:
        await run(gw, ex, OPENAI, "responses_read", lambda gw, ex, call: _read(gw, ex, call, store))

    async def remove(gw: Gateway, ex: Exchange) -> None:
        await run(gw, ex, OPENAI, "responses_read", lambda gw, ex, call: _delete(gw, ex, call, store))

    async def cancel(gw: Gateway, ex: Exchange) -> None:
        await run(gw, ex, OPENAI, "responses_read", lambda gw, ex, call: _cancel(gw, ex, call, store))

    exact: dict[tuple[str, str], Route] = {
        ("POST", "/v1/responses"): create_response,
        ("POST", "/v1/responses/input_tokens"): count_input_tokens,
    }
    prefixed: dict[tuple[str, str], Route] = {
        ("GET", PREFIX): read,
        ("DELETE", PREFIX): remove,
        ("POST", PREFIX): cancel,
    }
    return exact, prefixed


def _path_parts(ex: Exchange) -> list[str]:
    return ex.path.removeprefix(PREFIX).split("/")


def _query(ex: Exchange) -> dict[str, str]:
    raw = ex.scope.get("query_string", b"")
    return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}


async def _read(gw: Gateway, ex: Exchange, call: Call, store: ResponseStore) -> None:
    principal = await gw.identify(ex, call)
    call.recorded = True  # reading a stored response is not usage
    parts = _path_parts(ex)
    if len(parts) == 1:
        if _query(ex).get("stream") in ("true", "1"):
            raise InvalidRequest("Stored responses are returned whole; 'stream' is not supported here.", param="stream")
        stored = await store.get(principal, parts[0])
        await ex.respond(200, orjson.dumps(stored.response))
        return
    if len(parts) == 2 and parts[1] == "input_items":
        stored = await store.get(principal, parts[0])
        await ex.respond(200, orjson.dumps(_item_page(stored.input_items, _query(ex))))
        return
    raise NotFound(f"Unknown endpoint {ex.method} {ex.path}.", code="unknown_endpoint")


def _item_page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise f.bad("order", "'asc' or 'desc'")
    ordered = items if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [str(i.get("id")) for i in ordered]
        if after not in ids:
            raise f.bad("after", "the id of an item of this response")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "has_more": len(ordered) > limit,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
    }


def _limit(value: str | None) -> int:
    if value is None:
        return 20
    if not value.isdigit() or not 1 <= int(value) <= MAX_ITEMS_PAGE:
        raise f.bad("limit", f"an integer from 1 to {MAX_ITEMS_PAGE}")
    return int(value)


async def _delete(gw: Gateway, ex: Exchange, call: Call, store: ResponseStore) -> None:
    principal = await gw.identify(ex, call)
    call.recorded = True
    parts = _path_parts(ex)
    if len(parts) != 1:
        raise NotFound(f"Unknown endpoint {ex.method} {ex.path}.", code="unknown_endpoint")
    await store.delete(principal, parts[0])
    await ex.respond(200, orjson.dumps({"id": parts[0], "object": "response.deleted", "deleted": True}))


async def _cancel(gw: Gateway, ex: Exchange, call: Call, store: ResponseStore) -> None:
    principal = await gw.identify(ex, call)
    call.recorded = True
    parts = _path_parts(ex)
    if len(parts) != 2 or parts[1] != "cancel":
        raise NotFound(f"Unknown endpoint {ex.method} {ex.path}.", code="unknown_endpoint")
    await store.get(principal, parts[0])  # 404 for what the caller cannot see
    raise InvalidRequest("Only background responses can be cancelled, and Sluice runs none in the background.")


async def _input_tokens(gw: Gateway, ex: Exchange, call: Call, store: ResponseStore) -> None:
    """Exact from an upstream that serves the Responses API; Sluice's own estimate, marked, otherwise."""
    principal = await gw.identify(ex, call)
    call.recorded = True  # counting is not usage
    data, _ = await read_json(gw, ex)
    refuse_upstream_fields(data)
    model = f.opt_str(data, "model")
    previous = f.opt_str(data, "previous_response_id")
    history = await store.conversation(principal, previous) if previous else None
    count: int | None = None
    if model is not None:
        route = gw.resolve(call, model)
        deployment = min(route.deployments, key=lambda d: d.order)
        if serves_responses(route) and history is None:
            count = await _upstream_count(
                deployment.provider, deployment.target, {**data, "model": deployment.target.model}
            )
    headers: list[tuple[bytes, bytes]] = []
    if count is None:
        headers.append((b"x-sluice-estimated", b"true"))
        if data.get("input") is None and history is None:
            count = estimate_raw_prompt_tokens(data)
        else:
            count = estimate_prompt_tokens(decode_responses_request({"model": model or "", **data}, history))
    call.mark_first_byte()
    await ex.respond(200, orjson.dumps({"object": "response.input_tokens", "input_tokens": count}), headers=headers)


async def _upstream_count(provider: Any, target: Any, body: dict[str, Any]) -> int | None:
    try:
        upstream = await provider.forward("/responses/input_tokens", orjson.dumps(body), target, False)
        answer = orjson.loads(await upstream.read())
    except UpstreamRejected:
        raise
    except (SluiceError, orjson.JSONDecodeError):
        return None
    tokens = answer.get("input_tokens") if isinstance(answer, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
