"""The response cache without a server: keys, request controls, who decides, the LRU store and the entry bound."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.cache.keys import CacheControl, cache_key, parse_control
from sluice.cache.service import ResponseCache
from sluice.cache.store import CachedAnswer, MemoryCache
from sluice.call import Call
from sluice.canonical import Usage
from sluice.config import CacheConfig
from sluice.errors import InvalidRequest
from sluice.identity.principal import Principal
from sluice.routing.catalog import ModelRoute

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


def key(body: dict[str, Any] | None = None, **where: str) -> str:
    place = {"tenant": "ws-a", "surface": "openai", "endpoint": "chat", "model": "m", **where}
    return cache_key(place["tenant"], place["surface"], place["endpoint"], place["model"], body or BODY)


# --- keys -------------------------------------------------------------------------------------------------------


def test_the_key_is_stable_whatever_the_field_order() -> None:
    assert key(dict(reversed(list(BODY.items())))) == key(BODY)


@pytest.mark.parametrize("where", [{"tenant": "ws-b"}, {"surface": "anthropic"}, {"endpoint": "completion"}])
def test_tenant_surface_and_endpoint_are_part_of_the_key(where: dict[str, str]) -> None:
    assert key(**where) != key()


@pytest.mark.parametrize(
    "change", [{"temperature": 0.3}, {"stream": True}, {"max_tokens": 5}, {"tools": [{"type": "function"}]}]
)
def test_every_answer_changing_field_changes_the_key(change: dict[str, Any]) -> None:
    assert key({**BODY, **change}) != key()


@pytest.mark.parametrize(
    "change", [{"user": "u-1"}, {"metadata": {"a": 1}}, {"keep_alive": "5m"}, {"cache": {"ttl": 5}}, {"model": "x"}]
)
def test_fields_that_cannot_change_the_answer_are_left_out(change: dict[str, Any]) -> None:
    """The body's model name is left out because the resolved public model is part of the key already."""
    assert key({**BODY, **change}) == key()


# --- request controls -------------------------------------------------------------------------------------------


def test_no_controls() -> None:
    assert parse_control(None, BODY) == CacheControl()


def test_header_directives_in_any_case_and_spacing() -> None:
    assert parse_control(b" On ,TTL=30,no-cache , no-store,", {}) == CacheControl(True, True, True, 30.0)
    assert parse_control(b"off", {}) == CacheControl(enabled=False)


def test_body_field_as_boolean_or_object_and_it_wins_over_the_header() -> None:
    assert parse_control(None, {"cache": False}) == CacheControl(enabled=False)
    assert parse_control(b"off, ttl=5", {"cache": {"ttl": 60, "no_store": True}}) == CacheControl(
        True, False, True, 60.0
    )
    assert parse_control(b"no-cache", {"cache": {"enabled": False}}) == CacheControl(False, True, False, None)


@pytest.mark.parametrize(
    ("header", "body", "param"),
    [
        (b"yes", {}, "x-sluice-cache"),
        (b"ttl=soon", {}, "x-sluice-cache"),
        (b"ttl=0", {}, "x-sluice-cache"),
        (b"ttl=inf", {}, "x-sluice-cache"),
        (None, {"cache": "on"}, "cache"),
        (None, {"cache": {"tll": 5}}, "cache.tll"),
        (None, {"cache": {"no_store": "yes"}}, "cache.no_store"),
        (None, {"cache": {"ttl": True}}, "cache.ttl"),
        (None, {"cache": {"ttl": -1}}, "cache.ttl"),
    ],
)
def test_a_bad_control_is_a_400_naming_it(header: bytes | None, body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_control(header, body)
    assert refused.value.param == param


# --- who decides: request > key > model > default ---------------------------------------------------------------


def key_principal(cache: bool | None) -> Principal:
    return Principal(kind="key", id="k", role="member", workspace_id="ws", cache=cache)


@pytest.mark.parametrize(
    ("request_says", "key_says", "model_says", "default", "cached"),
    [
        (None, None, None, False, False),
        (None, None, None, True, True),
        (None, None, True, False, True),
        (None, True, False, False, True),
        (None, False, True, True, False),
        (True, False, False, False, True),
        (False, True, True, True, False),
    ],
)
def test_the_first_that_says_anything_decides(
    request_says: bool | None, key_says: bool | None, model_says: bool | None, default: bool, cached: bool
) -> None:
    cache = ResponseCache(CacheConfig(default=default), MemoryCache(10))
    route = ModelRoute("m", [], cache=model_says)
    assert cache.wanted(route, CacheControl(enabled=request_says), key_principal(key_says)) is cached


# --- the memory store and the entry bound -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(text: str) -> CachedAnswer:
    return CachedAnswer("application/json", (text.encode(),), 1, 1, 0)


async def test_the_least_recently_used_entry_goes_first() -> None:
    store = MemoryCache(max_entries=2)
    await store.put("a", answer("A"), 60)
    await store.put("b", answer("B"), 60)
    assert await store.get("a") is not None  # a is now the most recently used
    await store.put("c", answer("C"), 60)
    assert (await store.get("b"), len(store)) == (None, 2)
    assert await store.get("a") == answer("A") and await store.get("c") == answer("C")


async def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    store = MemoryCache(max_entries=10, clock=clock)
    await store.put("a", answer("A"), 5)
    clock.now = 4.9
    assert await store.get("a") is not None
    clock.now = 5.0
    assert await store.get("a") is None and len(store) == 0


async def test_answers_over_max_entry_bytes_are_not_stored() -> None:
    store = MemoryCache(max_entries=10)
    cache = ResponseCache(CacheConfig(max_entry_bytes=10), store)
    call = Call("request-1", "openai", "chat", 0.0, principal=key_principal(True))
    route = ModelRoute("m", [])
    small = await cache.lookup(CacheControl(), call, route, {"q": "small"})
    large = await cache.lookup(CacheControl(), call, route, {"q": "large"})
    assert small is not None and large is not None
    await cache.save(small, b"application/json", [b"0123456789"], Usage(1, 1))
    await cache.save(large, b"application/json", [b"0123456789", b"!"], Usage(1, 1))
    assert await store.get(small.key) is not None and await store.get(large.key) is None
