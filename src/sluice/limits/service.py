"""Admission and settlement: reserve a request's worst case before it runs, settle to what it really used.

A request that does not fit any of its scopes is refused here, before it reaches a queue or an upstream, with a
429 (rate, tokens, concurrency) or a budget error naming the scope and limit, and ``Retry-After``. Admitted
requests get ``x-ratelimit-*`` headers for the tightest scope.

When a budget's spend cannot be known — the period's spend must be read from the usage records and the database
is down — admission refuses with 503 ``limits_unavailable`` rather than guess: the spool alone is a lower bound,
and admitting on it could overspend by everything other replicas (or this one, before a restart) recorded.
Settlement never fails a call: what the shared store cannot take now is deferred and replayed (see reconcile.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog

from sluice.config import LimitsConfig
from sluice.errors import BudgetExceeded, Overloaded, RateLimited, SluiceError
from sluice.limits.periods import period_bounds
from sluice.limits.policy import PolicyTable
from sluice.limits.reconcile import Reconciler
from sluice.limits.store import (
    Admitted,
    Denial,
    LimitStore,
    Quota,
    Reservation,
    Settlement,
    SpendUnavailable,
    StoreUnavailable,
)
from sluice.observability.log_throttle import LogThrottle

if TYPE_CHECKING:
    from sluice.accounting.service import Accounting
    from sluice.call import Call
    from sluice.observability.metrics import Metrics
    from sluice.routing.catalog import ModelRoute

log = structlog.get_logger("sluice.limits")

LEASE_MARGIN = 60.0
SPEND_RETRY_AFTER = "5"  # seconds; a database outage is rarely over within Redis's one-second back-off


class Limiter:
    def __init__(
        self,
        config: LimitsConfig,
        policy: PolicyTable,
        store: LimitStore,
        accounting: Accounting,
        fallback: LimitStore | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        reconciler: Reconciler | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.store = store
        self.fallback = fallback
        self.accounting = accounting
        self.clock = clock
        self.metrics = metrics
        # While the shared store is down every request fails the same way: one line per interval, every one counted.
        self._warnings = LogThrottle(log)
        self.reconciler = reconciler  # set for a shared store: settlements it missed are replayed to it
        self.store_errors = 0
        # Reservations the shared store holds for calls still running here, renewed by renew_leases().
        self._running: dict[str, Reservation] = {}

    async def start(self) -> None:
        if self.reconciler is not None:
            await self.reconciler.start()

    async def close(self) -> None:
        if self.reconciler is not None:
            await self.reconciler.close()

    async def admit(self, call: Call, route: ModelRoute, estimate: Callable[[], tuple[int, int | None]]) -> Admitted:
        """Reserve the call's worst case in every scope, or raise the error that names what tripped."""
        principal = call.principal
        scopes = self.policy.scopes_for(principal) if principal is not None else []
        if not scopes:
            return Admitted()
        prompt_tokens, max_tokens = estimate()
        call.prompt_estimate = prompt_tokens
        output = max_tokens if max_tokens is not None else self.config.default_max_tokens
        price = self.accounting.worst_case_price(route)
        longest = max(d.target.timeouts.total for d in route.deployments) + LEASE_MARGIN
        now = self.clock()
        reservation = Reservation(
            call.usage_id,
            scopes,
            prompt_tokens + output,
            price.worst_case_nanos(prompt_tokens, output),
            now,
            min(self.config.lease_seconds, longest),
            renew_until=now + longest,
        )
        try:
            result = await self._reserve(reservation, now)
        except SpendUnavailable as exc:
            log.warning("budget spend unavailable; refusing", error=str(exc.__cause__ or exc))
            raise Overloaded(
                "Budgets cannot be checked right now: the usage records are unreachable. Try again shortly.",
                code="limits_unavailable",
                headers={"Retry-After": SPEND_RETRY_AFTER},
            ) from None
        if isinstance(result, Denial):
            if self.metrics is not None:
                self.metrics.limit_rejections.labels(result.scope.type, result.limit).inc()
            raise denial_error(result, reservation, self.config, now)
        call.reservation = reservation
        if not reservation.fallback:
            self._running[reservation.id] = reservation
        return result

    @property
    def lease_renewal_seconds(self) -> float:
        return self.config.lease_seconds / 3

    async def renew_leases(self) -> None:
        """Extend the leases of this replica's running calls, so that only a replica that stopped loses them."""
        now = self.clock()
        for key in [k for k, r in self._running.items() if r.settled or r.renew_until <= now]:
            del self._running[key]  # settled, or past the longest a call may run: left to expire
        # How many replicas share the limits, for the fallback's share should the shared store go down.
        await self.store.heartbeat(now, self.config.lease_seconds)
        if self._running:
            await self.store.renew(list(self._running.values()), now)

    async def _reserve(self, reservation: Reservation, now: float) -> Admitted | Denial:
        reconciler = self.reconciler
        try:
            if reconciler is not None and reconciler.pending:
                await reconciler.replay()  # what the store missed reaches it before it judges this call
            result = await self.store.reserve(reservation, now)
        except StoreUnavailable as exc:
            self._store_error()
            if reconciler is not None:
                reconciler.degraded = True
            if self.fallback is None:
                refusing = "limit store unavailable; refusing (limits.on_redis_error=fail_closed)"
                self._warnings.warning("store-down", refusing, error=str(exc))
                raise Overloaded(
                    "Limits cannot be checked right now; try again shortly.",
                    code="limits_unavailable",
                    headers={"Retry-After": "1"},
                ) from None
            self._warnings.warning(
                "store-down", "limit store unavailable; enforcing per replica (limits.on_redis_error=local_fallback)"
            )
            reservation.fallback = True
            return await self.fallback.reserve(reservation, now)
        self._warnings.recovered("store-down")
        if reconciler is not None and reconciler.degraded:
            reconciler.came_back()
        return result

    async def settle(self, call: Call, cost_nanos: int) -> None:
        """Settle the call's reservation to what it used; never raises for a store that is down."""
        reservation = call.reservation
        if reservation is None or reservation.settled:
            return
        self._running.pop(reservation.id, None)
        free_hit = call.cache_hit and cost_nanos == 0
        tokens = call.usage.total_tokens if call.usage is not None and not free_hit else 0
        now = self.clock()
        if reservation.fallback and self.fallback is not None:
            await self.fallback.settle(reservation, tokens, cost_nanos, now)
            if self.reconciler is not None:  # the shared store must learn this cost too, once it is back
                await self.reconciler.defer(Settlement(reservation, tokens, cost_nanos, now))
            return
        try:
            await self.store.settle(reservation, tokens, cost_nanos, now)
        except StoreUnavailable as exc:
            self._store_error()
            reservation.settled = True
            if self.reconciler is None:
                log.error("limit settlement lost: store unavailable", usage_id=reservation.id, error=str(exc))
                return
            self._warnings.warning(
                "settle-deferred", "limit settlements deferred until the store is back", usage_id=reservation.id
            )
            await self.reconciler.defer(Settlement(reservation, tokens, cost_nanos, now))

    @property
    def deferred(self) -> int:
        """Settlements waiting for the shared store to come back."""
        return self.reconciler.pending if self.reconciler is not None else 0

    def _store_error(self) -> None:
        self.store_errors += 1
        if self.metrics is not None:
            self.metrics.limit_store_errors.inc()


def denial_error(denial: Denial, reservation: Reservation, config: LimitsConfig, now: float) -> SluiceError:
    scope = denial.scope
    retry = str(max(1, math.ceil(denial.retry_after)))
    headers = {"Retry-After": retry, "x-sluice-limit-scope": scope.type, "x-sluice-limit": denial.limit}
    if denial.limit == "rpm":
        message = f"Rate limit reached: {denial.allowed} requests per minute for this {scope.type}."
    elif denial.limit == "tpm":
        message = (
            f"Token rate limit reached: {denial.allowed} tokens per minute for this {scope.type}; "
            f"this request may use up to {reservation.tokens}."
        )
    elif denial.limit == "concurrent":
        message = f"Too many concurrent requests: at most {denial.allowed} for this {scope.type}."
    else:
        _, end = period_bounds(scope.limits.period, datetime.fromtimestamp(now, UTC), ZoneInfo(config.timezone))
        message = (
            f"Budget exhausted for this {scope.type} ({denial.allowed / 1e9:g} per {scope.limits.period}); "
            f"it resets at {end.isoformat()}."
        )
        return BudgetExceeded(message, code="budget_exceeded", headers=headers)
    return RateLimited(f"{message} Retry after {retry} s.", code=f"{denial.limit}_limit", headers=headers)


def quota_headers(admitted: Admitted) -> list[tuple[bytes, bytes]]:
    """OpenAI-style ``x-ratelimit-*`` headers for the tightest scope of each kind."""
    out: list[tuple[bytes, bytes]] = []
    for kind, quota in (("requests", admitted.requests), ("tokens", admitted.tokens)):
        if quota is not None:
            out += _quota(kind, quota)
    return out


def _quota(kind: str, quota: Quota) -> list[tuple[bytes, bytes]]:
    return [
        (f"x-ratelimit-limit-{kind}".encode(), str(quota.limit).encode()),
        (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, quota.remaining)).encode()),
        (f"x-ratelimit-reset-{kind}".encode(), f"{math.ceil(quota.reset)}s".encode()),
    ]
