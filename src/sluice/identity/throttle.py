"""Failed-login throttling per email and per client address (in Redis when configured, so replicas share it)."""

from __future__ import annotations

import contextlib
import time
from collections import deque

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("sluice.throttle")

MAX_TRACKED = 100_000


class LoginThrottle:
    def __init__(
        self, attempts: int, window_seconds: float, redis: Redis | None = None, prefix: str = "sluice"
    ) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self.redis = redis
        self.prefix = f"{prefix}:login:"
        self._failures: dict[str, deque[float]] = {}

    async def blocked(self, *subjects: str) -> float | None:
        """Seconds until another attempt is allowed, if any subject is over its limit."""
        if self.redis is not None:
            try:
                for subject in subjects:
                    count = await self.redis.get(self.prefix + subject)
                    if count is not None and int(count) >= self.attempts:
                        ttl = await self.redis.pttl(self.prefix + subject)
                        return max(1.0, ttl / 1000)
                return None
            except (RedisError, OSError) as exc:
                log.warning("login throttle falls back to this replica", error=type(exc).__name__)
        now = time.monotonic()
        for subject in subjects:
            failures = self._failures.get(subject)
            if failures is None:
                continue
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) >= self.attempts:
                return max(1.0, failures[0] + self.window - now)
        return None

    async def failed(self, *subjects: str) -> None:
        if self.redis is not None:
            try:
                for subject in subjects:
                    key = self.prefix + subject
                    count = await self.redis.incr(key)
                    if count == 1:
                        await self.redis.pexpire(key, int(self.window * 1000))
                return
            except (RedisError, OSError) as exc:
                log.warning("login throttle falls back to this replica", error=type(exc).__name__)
        now = time.monotonic()
        if len(self._failures) > MAX_TRACKED:
            self._failures.clear()
        for subject in subjects:
            self._failures.setdefault(subject, deque()).append(now)

    async def succeeded(self, email_subject: str) -> None:
        """A good login clears the email's failures (not the address's)."""
        self._failures.pop(email_subject, None)
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.delete(self.prefix + email_subject)
