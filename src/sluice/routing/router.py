"""The router: which deployment serves a request, what happens when it fails, and what each deployment looks like.

For one request the router orders the model's deployments by its strategy (skipping those whose circuit is open
or whose health check failed), then tries them: a retryable failure moves to the next deployment at once, and
retrying a deployment already tried waits a jittered backoff first. When a model's deployments are exhausted,
its ``fallbacks`` name other models to try for matching failure kinds. Everything happens before the first byte
reaches the client and within the request's one deadline; the caller bills only the attempt that answered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sluice.config import BreakerConfig, RoutingConfig
from sluice.errors import Overloaded, SluiceError
from sluice.routing.breaker import CircuitBreaker, State
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.retry import backoff, counts_against_deployment, fallback_class, retryable
from sluice.routing.strategies import least_busy, lowest_latency, ordered, weighted_order

T = TypeVar("T")

EWMA_ALPHA = 0.2  # weight of the newest time-to-first-byte in the running average


@dataclass
class DeploymentState:
    breaker: CircuitBreaker
    in_flight: int = 0
    ttfb: float | None = None  # exponentially weighted average time to first byte, seconds
    healthy: bool = True
    last_error: str | None = None
    calls: int = 0
    failures: int = 0


@dataclass
class Outcome:
    """What routing did for one request (for the usage record, metrics and headers)."""

    attempts: int = 0
    retries: int = 0
    fallback_from: str | None = None
    tried: list[str] = field(default_factory=list)


class Router:
    def __init__(
        self,
        catalog: ModelCatalog,
        routing: RoutingConfig,
        breaker: BreakerConfig,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[Deployment], None] | None = None,
        on_fallback: Callable[[str], None] | None = None,
        on_state: Callable[[Deployment, State], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.routing = routing
        self.breaker_config = breaker
        self.rng = rng or random.Random()
        self.clock = clock
        self._states: dict[str, DeploymentState] = {}
        self._on_retry = on_retry
        self._on_fallback = on_fallback
        self._on_state = on_state

    def state(self, deployment: Deployment) -> DeploymentState:
        found = self._states.get(deployment.id)
        if found is None:
            found = self._states[deployment.id] = DeploymentState(CircuitBreaker(self.breaker_config))
        return found

    def states(self) -> dict[str, DeploymentState]:
        return dict(self._states)

    # --- planning ---------------------------------------------------------------------------------------------

    def plan(self, route: ModelRoute) -> list[Deployment]:
        """The route's usable deployments, best first for this request."""
        now = self.clock()
        usable = [d for d in route.deployments if self.state(d).healthy and self.state(d).breaker.available(now)]
        config = route.routing or self.routing
        if config.strategy == "weighted":
            return weighted_order(usable, lambda d: d.weight, self.rng)
        if config.strategy == "least_busy":
            return least_busy(usable, lambda d: self.state(d).in_flight, self.rng)
        if config.strategy == "lowest_latency":
            return lowest_latency(usable, lambda d: self.state(d).ttfb, self.rng)
        return ordered(usable, lambda d: d.order, lambda d: d.weight, self.rng)

    # --- running ------------------------------------------------------------------------------------------------

    async def run(
        self,
        route: ModelRoute,
        attempt: Callable[[Deployment], Awaitable[T]],
        outcome: Outcome,
        deadline: float | None = None,
        same_format: Callable[[ModelRoute], bool] | None = None,
    ) -> tuple[Deployment, T]:
        """Try deployments (and fallback models) until one answers; raise the last failure if none does.

        ``deadline`` is the loop time by which the request must be answered; no backoff sleeps past it.
        ``same_format`` tells whether a fallback model can take the request as it is (pass-through bodies can
        only go to upstreams of the client's format).
        """
        last: SluiceError | None = None
        current: ModelRoute | None = route
        visited = {route.name}
        while current is not None:
            # Each model in the chain gets its own attempts; the request's one deadline bounds them all.
            budget = (current.routing or self.routing).max_attempts
            try:
                return await self._run_model(current, attempt, outcome, deadline, budget)
            except SluiceError as error:
                last = error
                current = self._fallback(current, error, visited, same_format)
                if current is not None:
                    outcome.fallback_from = outcome.fallback_from or route.name
                    if self._on_fallback is not None:
                        self._on_fallback(route.name)
        assert last is not None
        raise last

    async def _run_model(
        self,
        route: ModelRoute,
        attempt: Callable[[Deployment], Awaitable[T]],
        outcome: Outcome,
        deadline: float | None,
        budget: int,
    ) -> tuple[Deployment, T]:
        candidates = self.plan(route)
        if not candidates:
            raise Overloaded(
                f"No deployment of model '{route.name}' is available right now (all failing or unhealthy).",
                code="no_healthy_deployment",
                headers={"Retry-After": str(int(self.breaker_config.open_seconds))},
            )
        config = route.routing or self.routing
        last: SluiceError | None = None
        tries: dict[str, int] = {}
        for index in range(budget):
            deployment = candidates[index % len(candidates)]
            state = self.state(deployment)
            if tries.get(deployment.id) and last is not None:
                wait = backoff(config, tries[deployment.id] - 1, last, self.rng)
                if wait is None or not _fits(wait, deadline):
                    break
                await asyncio.sleep(wait)
            if not state.breaker.allows(self.clock()):
                continue
            tries[deployment.id] = tries.get(deployment.id, 0) + 1
            outcome.attempts += 1
            outcome.tried.append(deployment.id)
            if outcome.attempts > 1:
                outcome.retries += 1
                if self._on_retry is not None:
                    self._on_retry(deployment)
            started = self.clock()
            try:
                result = await attempt(deployment)
            except SluiceError as error:
                self.record(deployment, error, None)
                if not retryable(error):
                    raise
                last = error
                continue
            except BaseException:
                state.breaker.release_probe()
                raise
            self.record(deployment, None, self.clock() - started)
            return deployment, result
        if last is None:
            raise Overloaded(f"No deployment of model '{route.name}' could take the request.", code="no_capacity")
        raise last

    def _fallback(
        self,
        route: ModelRoute,
        error: SluiceError,
        visited: set[str],
        same_format: Callable[[ModelRoute], bool] | None,
    ) -> ModelRoute | None:
        kind = fallback_class(error)
        if kind is None:
            return None
        for fallback in route.fallbacks:
            if kind not in fallback.on and "any" not in fallback.on:
                continue
            target = self.catalog.get(fallback.model)
            if target is None or target.name in visited or (same_format is not None and not same_format(target)):
                continue
            visited.add(target.name)
            return target
        return None

    # --- outcomes -----------------------------------------------------------------------------------------------

    def record(self, deployment: Deployment, error: SluiceError | None, ttfb: float | None) -> None:
        state = self.state(deployment)
        state.calls += 1
        before = state.breaker.state
        now = self.clock()
        if error is None:
            state.breaker.record(True, now)
            state.last_error = None
            if ttfb is not None:
                state.ttfb = ttfb if state.ttfb is None else (1 - EWMA_ALPHA) * state.ttfb + EWMA_ALPHA * ttfb
        elif counts_against_deployment(error):
            state.failures += 1
            state.last_error = error.code or error.kind
            state.breaker.record(False, now)
        else:
            state.breaker.release_probe()  # the caller's own mistake says nothing about the upstream
        if state.breaker.state != before and self._on_state is not None:
            self._on_state(deployment, state.breaker.state)

    def started(self, deployment: Deployment) -> Callable[[], None]:
        """Count a request in flight on the deployment; the returned function counts it out."""
        state = self.state(deployment)
        state.in_flight += 1

        def done() -> None:
            state.in_flight -= 1

        return done


def _fits(wait: float, deadline: float | None) -> bool:
    return deadline is None or asyncio.get_running_loop().time() + wait < deadline
