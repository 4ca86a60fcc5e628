"""Where cached answers live: a bounded in-process LRU, or Redis (shared by every replica). One interface."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """Exactly what the client received (the body, or the stream's frames) and the usage behind it."""

    content_type: str
    chunks: tuple[bytes, ...]  # one element for a complete body; the frames for a stream
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    def encode(self) -> bytes:
        return orjson.dumps(
            [
                self.content_type,
                [c.decode() for c in self.chunks],
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> CachedAnswer:
        ct, chunks, prompt, completion, cached = orjson.loads(raw)
        return cls(ct, tuple(c.encode() for c in chunks), prompt, completion, cached)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)


class CacheStore(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl: float) -> None: ...


class MemoryCache:
    """Least recently used entries go first once ``max_entries`` is reached; expired ones on access."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    async def get(self, key: str) -> CachedAnswer | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        self._entries[key] = (self._clock() + ttl, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Entries in Redis with Redis' own expiry; a Redis failure is a miss, never an error for the caller."""

    def __init__(self, redis: Redis, prefix: str, deadline: float = 0.5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.deadline = deadline  # a hung Redis is a miss after this, not a stalled request
        self.errors = 0

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            async with asyncio.timeout(self.deadline):
                raw = await self.redis.get(f"{self.prefix}:{key}")
        except (RedisError, OSError):
            self.errors += 1
            return None
        if raw is None:
            return None
        return CachedAnswer.decode(raw if isinstance(raw, bytes) else raw.encode())

    async def put(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                await self.redis.set(f"{self.prefix}:{key}", answer.encode(), px=max(1, int(ttl * 1000)))
        except (RedisError, OSError):
            self.errors += 1
