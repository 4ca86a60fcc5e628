"""The Redis limit store: one Lua round trip to admit, one to settle, exact across every replica.

All replicas count in the same Redis keys, so a 60-per-minute key gets 60 requests a minute in total however
many replicas serve it. Reservations carry a lease; a replica that dies with reservations in hand leaves them to
expire, and the next admission in that scope gives them back. When Redis cannot be reached the store raises
:class:`StoreUnavailable` at once for a short back-off instead of making every request wait for a timeout.

Script calls go through a :class:`ScriptBatcher`, so concurrent admissions and settlements share pipelined round
trips. Settlements that found Redis down are replayed later through :meth:`RedisLimitStore.settle_many` (one
pipelined round trip per batch); the settle script's per-call marker makes a replay harmless, and its
``loaded_at`` check keeps a counter that was reloaded from the records meanwhile from counting a call twice.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from sluice.limits.periods import Periods
from sluice.limits.policy import Scope
from sluice.limits.redis_batch import DEFAULT_DEADLINE_SECONDS, LuaScript, ScriptBatcher
from sluice.limits.redis_scripts import HEARTBEAT, INIT_SPENT, RENEW, RESERVE, SETTLE
from sluice.limits.store import Admitted, Denial, LimitName, Quota, Reservation, Settlement, StoreUnavailable

SpendLoader = Callable[[Scope, datetime, datetime], Awaitable[int]]

log = structlog.get_logger("sluice.limits")

SETTLED_MARKER_TTL = 3 * 86_400
DOWN_BACKOFF = 1.0


class RedisLimitStore:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        tz: ZoneInfo,
        load_spent: SpendLoader,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self.redis = redis
        self.deadline = deadline
        self.prefix = prefix
        self.tz = tz
        self.periods = Periods(tz)
        self._load_spent = load_spent
        self.batcher = ScriptBatcher(redis, deadline=deadline)
        self._reserve = LuaScript.of(RESERVE)
        self._settle = LuaScript.of(SETTLE)
        self._init = LuaScript.of(INIT_SPENT)
        self._renew = LuaScript.of(RENEW)
        self._heartbeat = LuaScript.of(HEARTBEAT)
        self.replica = uuid.uuid4().hex
        # Replicas live at the last heartbeat (this one included): the fallback's share while Redis is down.
        self.live_replicas = 1
        self._clock = clock
        self._down_until = 0.0

    def _key(self, scope: Scope, part: str) -> str:
        return f"{self.prefix}:{{{scope.name}}}:{part}"

    def _budget_keys(self, scope: Scope, period: str) -> list[str]:
        return [self._key(scope, f"b:{period}"), self._key(scope, f"br:{period}"), self._key(scope, f"ba:{period}")]

    def _check_up(self) -> None:
        if self._clock() < self._down_until:
            raise StoreUnavailable("redis recently unreachable")

    def _went_down(self, exc: Exception) -> StoreUnavailable:
        self._down_until = self._clock() + DOWN_BACKOFF
        return StoreUnavailable(str(exc) or type(exc).__name__)

    async def _call(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        self._check_up()
        try:
            return await self.batcher.call(script, keys, args)
        except (RedisError, OSError) as exc:  # READONLY, OOM and LOADING refusals too: Redis cannot serve now
            raise self._went_down(exc) from exc

    async def reserve(self, reservation: Reservation, now: float) -> Admitted | Denial:
        keys: list[str] = []
        args: list[Any] = [
            now,
            reservation.id,
            reservation.tokens,
            reservation.cost_nanos,
            now + reservation.lease,
            len(reservation.scopes),
        ]
        for scope in reservation.scopes:
            limits = scope.limits
            _, end, period = self.periods.current(limits.period, now)
            keys += [
                self._key(scope, "rq"),
                self._key(scope, "tk"),
                self._key(scope, "cc"),
                *self._budget_keys(scope, period),
            ]
            args += [
                limits.rpm or 0,
                limits.tpm or 0,
                limits.concurrent or 0,
                -1 if limits.budget_nanos is None else limits.budget_nanos,
                math.ceil(end - now),
            ]
            if limits.budget_nanos is not None:
                reservation.period_keys[scope.name] = period
        for _attempt in range(2):
            result = await self._call(self._reserve, keys, args)
            verdict = _text(result[0])
            if verdict == "ok":
                return Admitted(_quota(result[1:4]), _quota(result[4:7]))
            if verdict == "deny":
                scope = reservation.scopes[int(result[1])]
                limit: LimitName = _text(result[2])  # type: ignore[assignment]
                return Denial(scope, limit, int(result[3]), float(result[4]))
            await self._initialise(reservation.scopes[int(result[1])], now)
        raise StoreUnavailable("budget counter could not be initialised")

    async def _initialise(self, scope: Scope, now: float) -> None:
        """Load a period's spend from the usage records into Redis (first use of the period anywhere)."""
        start, end, period = self.periods.current(scope.limits.period, now)
        spent = await self._load_spent(
            scope, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        )  # SpendUnavailable when the records cannot be read: never guess a spend
        ttl = math.ceil(end - now)
        await self._call(self._init, [self._key(scope, f"b:{period}")], [spent, ttl, repr(now)])

    def _settle_arguments(self, s: Settlement) -> tuple[list[str], list[Any]]:
        reservation = s.reservation
        # A reservation the fallback store admitted never reached Redis: only its cost is carried over (rate
        # windows and concurrency during an outage are per replica).
        token_delta = 0 if reservation.fallback else s.tokens - reservation.tokens
        keys = [f"{self.prefix}:settled:{reservation.id}"]
        args: list[Any] = [
            reservation.id,
            int(reservation.at),
            token_delta,
            s.cost_nanos,
            SETTLED_MARKER_TTL,
            len(reservation.scopes),
            repr(s.now),
        ]
        for scope in reservation.scopes:
            limits = scope.limits
            reserved_period = reservation.period_keys.get(scope.name, "")
            current = self.periods.key_at(limits.period, s.now)
            b, br, ba = self._budget_keys(scope, reserved_period)
            keys += [self._key(scope, "tk"), self._key(scope, "cc"), b, br, ba, self._key(scope, f"b:{current}")]
            args += [limits.tpm or 0, limits.concurrent or 0, -1 if limits.budget_nanos is None else 0]
        return keys, args

    async def settle(self, reservation: Reservation, tokens: int, cost_nanos: int, now: float) -> None:
        if reservation.settled:
            return
        keys, args = self._settle_arguments(Settlement(reservation, tokens, cost_nanos, now))
        await self._call(self._settle, keys, args)
        reservation.settled = True

    async def settle_many(self, settlements: list[Settlement]) -> None:
        """Replay settlements in one pipelined round trip (each is idempotent, so a partial replay is safe)."""
        if not settlements:
            return
        self._check_up()
        calls = (self.batcher.call(self._settle, *self._settle_arguments(s)) for s in settlements)
        results = await asyncio.gather(*calls, return_exceptions=True)
        for s, result in zip(settlements, results, strict=True):
            if isinstance(result, ResponseError):
                # Redis answered and refused this one (not an outage): retrying cannot help, and keeping it
                # would stall every later replay.
                log.error("deferred limit settlement refused by redis", usage_id=s.reservation.id, error=str(result))
            elif isinstance(result, (RedisError, OSError)):
                raise self._went_down(result) from result
            elif isinstance(result, BaseException):
                raise result

    async def heartbeat(self, now: float, ttl: float) -> int:
        """Say this replica is live for ``ttl`` seconds; learn how many are (kept for an outage)."""
        self._check_up()
        try:
            live = await self.batcher.call(self._heartbeat, [f"{self.prefix}:replicas"], [self.replica, now + ttl, now])
        except (RedisError, OSError) as exc:
            raise self._went_down(exc) from exc
        self.live_replicas = max(1, int(live))
        return self.live_replicas

    async def renew(self, reservations: list[Reservation], now: float) -> None:
        """Extend running calls' leases (one pipelined round trip for all of them)."""
        if not reservations:
            return
        self._check_up()
        calls = []
        for reservation in reservations:
            keys = [
                k for scope in reservation.scopes for k in (self._key(scope, "cc"), self._lease_key(reservation, scope))
            ]
            calls.append(self.batcher.call(self._renew, keys, [reservation.id, now + reservation.lease, repr(now)]))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, (RedisError, OSError)):
                raise self._went_down(result) from result

    def _lease_key(self, reservation: Reservation, scope: Scope) -> str:
        """The budget reservation's lease set of the period it was made in (``br``)."""
        return self._key(scope, f"br:{reservation.period_keys.get(scope.name, '')}")

    async def spent(self, scope: Scope, now: float) -> int:
        start, end, period = self.periods.current(scope.limits.period, now)
        self._check_up()
        try:
            async with asyncio.timeout(self.deadline):
                value = await self.redis.hget(self._key(scope, f"b:{period}"), "spent")
        except (RedisError, OSError) as exc:
            raise self._went_down(exc) from exc
        if value is None:
            return await self._load_spent(scope, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
        return int(value)

    async def close(self) -> None:
        return None  # the Redis client is shared and closed by the application


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _quota(values: list[Any]) -> Quota | None:
    limit, remaining, reset = (int(v) for v in values)
    return Quota(limit, remaining, float(reset)) if limit >= 0 else None
