"""The in-process limit store: exact within one process (the default; use Redis for several replicas).

Admission checks every scope and then applies every charge with no ``await`` in between, so on one event loop
two requests can never both take the last unit of a limit. Budget spend for a period is loaded once from the
usage records (database and local spool) the first time a scope is seen in that period, so a restart does not
forget what was already spent. When the records cannot be read, admission in that scope raises
:class:`~sluice.limits.store.SpendUnavailable` rather than guess: a spend of zero would let a restarted gateway
overspend by everything spent before.

As the per-replica fallback of the Redis store it is told to :meth:`refresh_spend` when Redis is back, so the next
outage starts from the records (which by then hold every replica's spend) and not from what this replica last saw.
Given ``replicas`` (how many replicas were live, from their heartbeats in Redis), it enforces this replica's share:
each rate, token and concurrency limit divided by that count (rounded up), and of each budget the headroom left
when its spend was loaded divided by it, so replicas together overspend by at most one call each.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sluice.limits.periods import Periods
from sluice.limits.policy import Scope
from sluice.limits.store import Admitted, Denial, Quota, Reservation, Settlement, Window

SpendLoader = Callable[[Scope, datetime, datetime], Awaitable[int]]


class _ScopeState:
    __slots__ = ("concurrent", "fresh", "loaded", "period", "requests", "reserved", "spent", "tokens")

    def __init__(self) -> None:
        self.requests = Window()
        self.tokens = Window()
        self.concurrent = 0
        self.period: str | None = None
        self.fresh = False  # spend loaded from the records for ``period`` and kept current since
        self.spent = 0
        self.loaded = 0  # the spend read from the records at the period's last load
        self.reserved = 0


class MemoryLimitStore:
    def __init__(
        self, tz: ZoneInfo, load_spent: SpendLoader | None = None, replicas: Callable[[], int] | None = None
    ) -> None:
        self.tz = tz
        self._replicas = replicas
        self.periods = Periods(tz)
        self._load_spent = load_spent
        self._states: dict[str, _ScopeState] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[int]] = {}

    def _state(self, scope: Scope) -> _ScopeState:
        state = self._states.get(scope.name)
        if state is None:
            state = self._states[scope.name] = _ScopeState()
        return state

    async def _current_period(self, scope: Scope, now: float) -> None:
        """Make the scope's budget state describe the period containing ``now`` (loading its spend once)."""
        key = self.periods.key_at(scope.limits.period, now)
        state = self._state(scope)
        if state.period == key and state.fresh:
            return
        pending = self._loading.get((scope.name, key))
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[(scope.name, key)] = pending
            try:
                start, end = self.periods.bounds_at(scope.limits.period, now)
                pending.set_result(await self._load_spent(scope, start, end) if self._load_spent else 0)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here; waiters re-raise it through the await below
                raise
            finally:
                self._loading.pop((scope.name, key), None)
        spent = await pending
        state.loaded = spent
        if state.period != key:  # another waiter may have rolled it already
            state.period, state.spent, state.reserved = key, spent, 0
        elif not state.fresh:
            # A refresh keeps the reservations in hand. A call settled while the load ran may be missing from
            # the records read; keeping the larger figure can only over-count, never let a budget overspend.
            state.spent = max(state.spent, spent)
        state.fresh = True

    def refresh_spend(self) -> None:
        """Read each budget's spend from the records again at its next admission (after Redis is back)."""
        for state in self._states.values():
            state.fresh = False

    async def reserve(self, reservation: Reservation, now: float) -> Admitted | Denial:
        for scope in reservation.scopes:
            if scope.limits.budget_nanos is not None:
                await self._current_period(scope, now)
        # From here to the end nothing awaits: the check and the charges are one atomic step on this loop.
        second = int(now)
        states = [self._state(scope) for scope in reservation.scopes]
        for scope, state in zip(reservation.scopes, states, strict=True):
            denial = self._check(scope, state, reservation, second, now)
            if denial is not None:
                return denial
        requests: Quota | None = None
        tokens: Quota | None = None
        for scope, state in zip(reservation.scopes, states, strict=True):
            limits = scope.limits
            if limits.rpm is not None:
                state.requests.add(second, 1)
                quota = Quota(limits.rpm, limits.rpm - state.requests.total, state.requests.reset_in(second))
                requests = quota if requests is None or quota.remaining < requests.remaining else requests
            if limits.tpm is not None:
                state.tokens.add(second, reservation.tokens)
                quota = Quota(limits.tpm, limits.tpm - state.tokens.total, state.tokens.reset_in(second))
                tokens = quota if tokens is None or quota.remaining < tokens.remaining else tokens
            if limits.concurrent is not None:
                state.concurrent += 1
            if limits.budget_nanos is not None:
                state.reserved += reservation.cost_nanos
                reservation.period_keys[scope.name] = state.period or ""
        return Admitted(requests, tokens)

    def _check(
        self, scope: Scope, state: _ScopeState, reservation: Reservation, second: int, now: float
    ) -> Denial | None:
        limits = scope.limits
        n = max(1, self._replicas()) if self._replicas is not None else 1
        if limits.rpm is not None:
            rpm = math.ceil(limits.rpm / n)
            state.requests.prune(second)
            if state.requests.total + 1 > rpm:
                return Denial(scope, "rpm", rpm, state.requests.wait_for(second, 1, rpm))
        if limits.tpm is not None:
            tpm = math.ceil(limits.tpm / n)
            state.tokens.prune(second)
            if state.tokens.total + reservation.tokens > tpm:
                wait = state.tokens.wait_for(second, reservation.tokens, tpm)
                return Denial(scope, "tpm", tpm, wait)
        if limits.concurrent is not None and state.concurrent >= math.ceil(limits.concurrent / n):
            return Denial(scope, "concurrent", limits.concurrent, 1.0)
        budget = limits.budget_nanos
        if budget is not None and n > 1:
            budget = state.loaded + max(0, budget - state.loaded) // n  # this replica's share of the headroom
        if budget is not None and state.spent + state.reserved + reservation.cost_nanos > budget:
            end = self.periods.current(limits.period, now)[1]
            return Denial(scope, "budget", budget, max(1.0, end - now))
        return None

    async def settle(self, reservation: Reservation, tokens: int, cost_nanos: int, now: float) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        for scope in reservation.scopes:
            state = self._states.get(scope.name)
            if state is None:
                continue
            limits = scope.limits
            if limits.tpm is not None:
                state.tokens.adjust(int(reservation.at), tokens - reservation.tokens)
            if limits.concurrent is not None:
                state.concurrent -= 1
            if limits.budget_nanos is not None:
                if state.period == reservation.period_keys.get(scope.name):
                    state.reserved -= reservation.cost_nanos
                if state.period == self.periods.key_at(limits.period, now):
                    state.spent += cost_nanos
                # Otherwise the period rolled over while the call ran; its cost is in the usage record, which
                # the next period's load does not count (it started in the old period), as budgets intend.

    async def settle_many(self, settlements: list[Settlement]) -> None:
        for s in settlements:
            await self.settle(s.reservation, s.tokens, s.cost_nanos, s.now)

    async def spent(self, scope: Scope, now: float) -> int:
        await self._current_period(scope, now)
        return self._state(scope).spent

    async def heartbeat(self, now: float, ttl: float) -> int:
        return 1  # nobody else shares an in-process store

    async def renew(self, reservations: list[Reservation], now: float) -> None:
        return None  # in-process: a reservation lives exactly as long as its call

    async def close(self) -> None:
        self._states.clear()
