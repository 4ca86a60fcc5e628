"""The Sluice configurations the benchmark measures, each one a named variant.

A variant is the base configuration (an OpenAI-compatible provider at the mock upstream, models whose public
names equal the upstream's, warning-level logs, a fresh data directory with SQLite) plus its own YAML overrides
(deep-merged: mappings merge, lists replace), extra environment variables, and the kind of key its requests
carry. To measure a new configuration, append a :class:`Variant` to :data:`VARIANTS` (see ``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bench import payloads

# "master": the master key (SLUICE_MASTER_KEY); "virtual": a key made with `sluice keys create` before start-up;
# "none": no Authorization header (for variants that admit anonymous callers).
KeyKind = Literal["master", "virtual", "none"]

CHAT_PROVIDER = "bench-upstream"
STREAM_PROVIDER = "bench-stream-upstream"


@dataclass(frozen=True)
class Upstreams:
    """Base URLs (ending in /v1) of the mock upstreams, for variants that add providers of their own."""

    chat: str  # non-stream answers (nginx, or the Python mock)
    stream: str  # SSE answers (the Python mock)


def _nothing(_up: Upstreams) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    key: KeyKind = "master"
    config: Callable[[Upstreams], dict[str, Any]] = _nothing  # YAML overrides, deep-merged over base_config
    env: Mapping[str, str] = field(default_factory=dict)
    # Another variant whose c=64 throughput this one must stay within ``tolerance`` of: 10% for a feature that
    # should be free, what the issue allows for one that does real work on every request (limits).
    baseline: str | None = None
    tolerance: float = 0.10


def _three_deployments(up: Upstreams) -> dict[str, Any]:
    """The chat model served by three deployments of the same upstream, routed least-busy."""
    providers = [
        {"name": f"{CHAT_PROVIDER}-{i}", "kind": "openai", "base_url": up.chat, "api_key": "sk-bench-upstream"}
        for i in range(3)
    ]
    return {
        "providers": [
            *providers,
            {"name": STREAM_PROVIDER, "kind": "openai", "base_url": up.stream, "api_key": "sk-bench-upstream"},
        ],
        "models": [
            {
                "name": payloads.MODEL,
                "routing": {"strategy": "least_busy"},
                "deployments": [{"provider": p["name"]} for p in providers],
            },
            {"name": payloads.STREAM_MODEL, "deployments": [{"provider": STREAM_PROVIDER}]},
        ],
    }


_LIMITS = {"defaults": {"key": {"rpm": 100_000_000, "tpm": 1_000_000_000_000, "budget": 1_000_000_000.0}}}

_QUIET = {"observability": {"metrics": False, "response_headers": False}, "logging": {"access_log": False}}
# The issue's own comparison: metrics and the access log off, the timing headers on as by default.
_UNLOGGED = {"observability": {"metrics": False, "response_headers": True}, "logging": {"access_log": False}}
_OBSERVED = {
    "observability": {"metrics": True, "response_headers": True},
    "logging": {"access_log": True, "level": "info"},
}


VARIANTS: list[Variant] = [
    Variant("sluice", "master key, defaults otherwise"),
    Variant(
        "sluice-3dep",
        "the model on 3 deployments, least-busy routing (router cost vs one deployment)",
        config=_three_deployments,
        baseline="sluice",
    ),
    Variant(
        "sluice-cache",
        "response cache on for every model: after the first request every answer is a cache hit",
        config=lambda _up: {"cache": {"default": True}},
    ),
    Variant(
        "sluice-limits",
        "virtual key with rpm, tpm and a budget (in-process limits), usage records on",
        key="virtual",
        config=lambda _up: {"limits": _LIMITS},
        baseline="sluice-vkey",
        tolerance=0.15,
    ),
    Variant(
        "sluice-limits-redis",
        "the same limits kept in Redis (127.0.0.1:6379), shared by all replicas",
        key="virtual",
        config=lambda _up: {"redis_url": "redis://127.0.0.1:6379/0", "limits": {**_LIMITS, "backend": "redis"}},
        baseline="sluice-vkey",
        tolerance=0.30,
    ),
    Variant("sluice-ui-off", "the web UI not mounted (SLUICE_UI=0)", env={"SLUICE_UI": "0"}),
    Variant(
        "sluice-with-ui",
        "the web UI mounted, as by default (vs sluice-ui-off)",
        env={"SLUICE_UI": "1"},
        baseline="sluice-ui-off",
        tolerance=0.05,
    ),
    Variant("sluice-quiet", "metrics, timing headers and the access log off", config=lambda _up: _QUIET),
    Variant(
        "sluice-observed",
        "metrics, timing headers and the access log on (vs sluice-quiet)",
        config=lambda _up: _OBSERVED,
        baseline="sluice-quiet",
    ),
    Variant(
        "sluice-unlogged",
        "metrics and the access log off, timing headers on (the observability issue's baseline)",
        config=lambda _up: _UNLOGGED,
    ),
    Variant(
        "sluice-logged",
        "metrics and the access log on (vs sluice-unlogged: the observability issue's comparison)",
        config=lambda _up: _OBSERVED,
        baseline="sluice-unlogged",
    ),
    Variant(
        "sluice-vkey",
        "virtual key from `sluice keys create` (hash → in-process key cache)",
        key="virtual",
        baseline="sluice",
    ),
]


def base_config(up: Upstreams) -> dict[str, Any]:
    return {
        "builtin_mock": False,
        "logging": {"level": "warning", "format": "json"},
        "providers": [
            {"name": CHAT_PROVIDER, "kind": "openai", "base_url": up.chat, "api_key": "sk-bench-upstream"},
            {"name": STREAM_PROVIDER, "kind": "openai", "base_url": up.stream, "api_key": "sk-bench-upstream"},
        ],
        "models": [
            {"name": payloads.MODEL, "deployments": [{"provider": CHAT_PROVIDER}]},
            {"name": payloads.STREAM_MODEL, "deployments": [{"provider": STREAM_PROVIDER}]},
        ],
    }


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: nested mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = merged(current, value)
        else:
            out[key] = value
    return out


def variant_config(variant: Variant, up: Upstreams) -> dict[str, Any]:
    return merged(base_config(up), variant.config(up))


def find(names: list[str]) -> list[Variant]:
    known = {v.name: v for v in VARIANTS}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"unknown Sluice variant(s): {', '.join(missing)} (known: {', '.join(known)})")
    return [known[n] for n in names]
