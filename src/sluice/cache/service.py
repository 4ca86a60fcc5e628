"""The response cache between admission and routing: answer from the cache, or record the answer for next time.

Caching is opt-in: per request (``x-sluice-cache: on`` or a ``cache`` body field), per API key (its ``cache``
setting), per model (``models[].cache``) or for everything (``cache.default``), the first that says anything
deciding; a request can still say ``no-cache`` (do not read) and ``no-store`` (do not write) or shorten the
lifetime. What is stored is exactly what the client received (the
body, or the stream's frames), so a streamed request replays as a stream. Hits cost nothing unless
``cache.bill_hits`` says otherwise, carry ``x-sluice-cache: hit``, and are marked in the usage record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.cache.keys import HEADER, CacheControl, cache_key
from sluice.cache.store import CachedAnswer, CacheStore
from sluice.canonical import Usage
from sluice.config import CacheConfig
from sluice.identity.principal import Principal
from sluice.routing.catalog import ModelRoute

if TYPE_CHECKING:
    from sluice.call import Call
    from sluice.observability.metrics import Metrics

HIT = (HEADER, b"hit")


@dataclass(slots=True)
class Lookup:
    key: str
    control: CacheControl
    store_ttl: float | None  # None: do not store this answer
    hit: CachedAnswer | None = None


class ResponseCache:
    def __init__(self, config: CacheConfig, store: CacheStore, metrics: Metrics | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics

    def wanted(self, route: ModelRoute, control: CacheControl, principal: Principal | None) -> bool:
        """Whether this request's answer is cached: the request, else the key, else the model, else the default."""
        if control.enabled is not None:
            return control.enabled
        if principal is not None and principal.cache is not None:
            return principal.cache
        return route.cache if route.cache is not None else self.config.default

    async def lookup(self, control: CacheControl, call: Call, route: ModelRoute, body: dict[str, Any]) -> Lookup | None:
        """None when the request is not cached at all; otherwise the key, and the hit if there is one."""
        principal = call.principal
        if not self.wanted(route, control, principal):
            return None
        tenant = principal.tenant if principal is not None else "anonymous"
        key = cache_key(tenant, call.surface, call.endpoint, route.name, body)
        ttl = None if control.no_store else min(control.ttl or self.config.ttl_seconds, self.config.ttl_seconds)
        found = Lookup(key, control, ttl)
        if not control.no_cache:
            found.hit = await self.store.get(key)
        if self.metrics is not None:
            self.metrics.cache.labels("hit" if found.hit is not None else "miss").inc()
        return found

    async def save(self, lookup: Lookup, content_type: bytes, chunks: list[bytes], usage: Usage | None) -> None:
        if lookup.store_ttl is None or not chunks:
            return
        answer = CachedAnswer(
            content_type.decode(),
            tuple(chunks),
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            usage.cached_tokens if usage else 0,
        )
        if answer.size <= self.config.max_entry_bytes:
            await self.store.put(lookup.key, answer, lookup.store_ttl)
