"""Cache keys and per-request cache controls.

A key covers the tenant (workspace, or the principal when it has none), the surface and endpoint, the resolved
public model, and the whole request body except the fields that cannot change the answer (``user``,
``metadata``, ``keep_alive``, the cache controls themselves). Two workspaces never share an entry, and any
parameter that changes the answer (temperature, tools, max_tokens, stream, stream_options...) changes the key.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any

import orjson

from sluice.errors import InvalidRequest

IGNORED_FIELDS = frozenset({"user", "metadata", "keep_alive", "cache"})
BODY_FIELDS = frozenset({"enabled", "ttl", "no_cache", "no_store"})  # of a request body's ``cache`` object
HEADER = b"x-sluice-cache"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What a request asks of the cache: opt in or out, skip reading, skip writing, a shorter lifetime."""

    enabled: bool | None = None  # None: whatever the model and key say
    no_cache: bool = False  # do not answer from the cache (still store, unless no_store)
    no_store: bool = False  # do not store this answer
    ttl: float | None = None


NO_CONTROL = CacheControl()


def cache_key(tenant: str, surface: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    relevant = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k != "model"}
    material = orjson.dumps([tenant, surface, endpoint, model, relevant], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()


def parse_control(header: bytes | None, body: dict[str, Any]) -> CacheControl:
    """From ``x-sluice-cache: on, ttl=60, no-cache, no-store`` and/or a body field ``cache: {...}``.

    Anything else in either place is a 400 naming it: a misspelt control must not silently change nothing.
    """
    control = _from_header(header) if header is not None else NO_CONTROL
    raw = body.get("cache")
    return control if raw is None else _with_body(control, raw)


def _from_header(header: bytes) -> CacheControl:
    enabled: bool | None = None
    no_cache = no_store = False
    ttl: float | None = None
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
        elif name:
            raise InvalidRequest(
                f"Unknown directive '{name[:40]}' in 'x-sluice-cache' "
                "(expected on, off, ttl=<seconds>, no-cache, no-store).",
                param="x-sluice-cache",
            )
    return CacheControl(enabled, no_cache, no_store, ttl)


def _with_body(control: CacheControl, raw: Any) -> CacheControl:
    """The header's controls, updated by the body's ``cache`` field (which wins where both speak)."""
    if isinstance(raw, bool):
        return replace(control, enabled=raw)
    if not isinstance(raw, dict):
        raise InvalidRequest("Invalid value for 'cache': expected a boolean or an object.", param="cache")
    unknown = sorted(str(k)[:40] for k in raw if k not in BODY_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field 'cache.{unknown[0]}' (expected {', '.join(sorted(BODY_FIELDS))}).",
            param=f"cache.{unknown[0]}",
        )
    return CacheControl(
        _flag(raw, "enabled", True),
        control.no_cache or _flag(raw, "no_cache", False),
        control.no_store or _flag(raw, "no_store", False),
        _ttl(raw["ttl"], "cache.ttl") if raw.get("ttl") is not None else control.ttl,
    )


def _flag(raw: dict[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"Invalid value for 'cache.{name}': expected a boolean.", param=f"cache.{name}")
    return value


def _ttl(value: Any, param: str) -> float:
    if isinstance(value, bool):
        value = None  # JSON true is not a number of seconds
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"Invalid value for '{param}': expected a number of seconds.", param=param) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequest(f"Invalid value for '{param}': expected a positive number of seconds.", param=param)
    return seconds
