"""Cache keys and per-request cache controls.

A key covers the tenant (workspace, or the principal when it has none), the surface and endpoint, the resolved
public model, and the whole request body except the fields that cannot change the answer (``user``,
``metadata``, ``keep_alive``, the cache controls themselves). Two workspaces never share an entry, and any
parameter that changes the answer (temperature, tools, max_tokens, stream, stream_options...) changes the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.errors import InvalidRequest

IGNORED_FIELDS = frozenset({"user", "metadata", "keep_alive", "cache"})
HEADER = b"x-sluice-cache"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What a request asks of the cache: opt in or out, skip reading, skip writing, a shorter lifetime."""

    enabled: bool | None = None  # None: whatever the model and key say
    no_cache: bool = False  # do not answer from the cache (still store, unless no_store)
    no_store: bool = False  # do not store this answer
    ttl: float | None = None


def cache_key(tenant: str, surface: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    relevant = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k != "model"}
    material = orjson.dumps([tenant, surface, endpoint, model, relevant], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()


def parse_control(header: bytes | None, body: dict[str, Any]) -> CacheControl:
    """From ``x-sluice-cache: on, ttl=60, no-cache, no-store`` and/or a body field ``cache: {...}``."""
    enabled: bool | None = None
    no_cache = no_store = False
    ttl: float | None = None
    if header is not None:
        for token in header.decode("latin-1").split(","):
            name, _, value = token.strip().lower().partition("=")
            if name in ("on", "true", "1"):
                enabled = True
            elif name in ("off", "false", "0"):
                enabled = False
            elif name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "ttl":
                ttl = _ttl(value, "x-sluice-cache")
    raw = body.get("cache")
    if raw is not None:
        if isinstance(raw, bool):
            enabled = raw
        elif isinstance(raw, dict):
            enabled = raw.get("enabled", True) is True
            no_cache = no_cache or raw.get("no_cache") is True
            no_store = no_store or raw.get("no_store") is True
            if raw.get("ttl") is not None:
                ttl = _ttl(raw["ttl"], "cache.ttl")
        else:
            raise InvalidRequest("Invalid value for 'cache': expected a boolean or an object.", param="cache")
    return CacheControl(enabled, no_cache, no_store, ttl)


def _ttl(value: Any, param: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"Invalid value for '{param}': expected a number of seconds.", param=param) from None
    if seconds <= 0:
        raise InvalidRequest(f"Invalid value for '{param}': expected a positive number of seconds.", param=param)
    return seconds
