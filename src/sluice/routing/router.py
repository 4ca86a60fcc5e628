"""The router: which deployment serves a request, what happens when it fails, and what each deployment looks like.

For one request the router orders the model's deployments by its strategy (skipping those whose circuit is open
or whose health check failed), then tries them: a retryable failure moves to the next deployment at once, a full
queue on one deployment moves to a sibling, and retrying a deployment already tried waits a jittered backoff
first. When a model's deployments are exhausted (or a failure is one its ``fallbacks`` list), the fallback models
are tried. Everything happens before the first byte reaches the client, within one budget of attempts and the
request's one deadline; the caller bills only the attempt that answered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from sluice.config import BreakerConfig, RoutingConfig
from sluice.errors import Overloaded, QueueFull, SluiceError, UpstreamTimeout
from sluice.routing.breaker import CircuitBreaker, State
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.deadlines import Deadline
from sluice.routing.retry import backoff, counts_against_deployment, fallback_class, retryable
from sluice.routing.strategies import least_busy, lowest_latency, ordered, weighted_order

T = TypeVar("T")

EWMA_ALPHA = 0.2  # weight of the newest time-to-first-byte in the running average

Turn = Literal["go", "retire", "late"]  # what becomes of a deployment's turn in the attempt loop
Backoff = float | Literal["stop", "retire", "late"]  # seconds to wait before a repeat, or why there is none


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
        deadline: Deadline | None = None,
        same_format: Callable[[ModelRoute], bool] | None = None,
    ) -> tuple[Deployment, T]:
        """Try deployments (and fallback models) until one answers; raise the last failure if none does.

        The requested model's ``max_attempts`` bounds the upstream attempts of the whole request, fallback models
        included, and ``deadline`` bounds its time; no backoff sleeps past it. ``same_format`` tells whether a
        fallback model can take the request as it is (pass-through bodies can only go to upstreams of the
        client's format).
        """
        budget = (route.routing or self.routing).max_attempts
        visited = {route.name}

        def fallback_for(current: ModelRoute, error: SluiceError) -> ModelRoute | None:
            return self._fallback(current, error, visited, same_format)

        current = route
        while True:
            try:
                return await self._run_model(current, attempt, outcome, deadline, budget, fallback_for)
            except SluiceError as error:
                following = fallback_for(current, error) if outcome.attempts < budget else None
                if following is None:
                    raise
                visited.add(following.name)
                current = following
                outcome.fallback_from = outcome.fallback_from or route.name
                if self._on_fallback is not None:
                    self._on_fallback(route.name)

    async def _run_model(
        self,
        route: ModelRoute,
        attempt: Callable[[Deployment], Awaitable[T]],
        outcome: Outcome,
        deadline: Deadline | None,
        budget: int,
        fallback_for: Callable[[ModelRoute, SluiceError], ModelRoute | None],
    ) -> tuple[Deployment, T]:
        """One model's deployments: each in the strategy's order, then again after a backoff while attempts
        remain and no fallback model would take the failure instead.

        Every turn of the loop either makes an attempt (at most ``budget``) or retires a deployment for this
        request (its circuit is open, its time is up, its queue is full, its backoff does not fit), so the loop
        ends.
        """
        candidates = self.plan(route)
        if not candidates:
            raise Overloaded(
                f"No deployment of model '{route.name}' is available right now (all failing or unhealthy).",
                code="no_healthy_deployment",
                headers={"Retry-After": str(int(self.breaker_config.open_seconds))},
            )
        last: SluiceError | None = None
        errors: dict[str, SluiceError] = {}  # each deployment's latest failure: its backoff follows its own error
        retired: set[str] = set()
        out_of_time = False
        turn = 0
        while outcome.attempts < budget and len(retired) < len(candidates):
            deployment = candidates[turn % len(candidates)]
            turn += 1
            if deployment.id in retired:
                continue
            previous = errors.get(deployment.id)
            # A repeat waits its backoff first, unless a fallback model should take over instead.
            wait: Backoff = 0.0
            if previous is not None:
                wait = self._backoff(route, deployment, previous, last, deadline, outcome, fallback_for)
            if wait == "stop":
                break
            if not isinstance(wait, str) and wait > 0:
                await asyncio.sleep(wait)
            verdict = wait if isinstance(wait, str) else self._ready(deployment, deadline)
            if verdict != "go":
                retired.add(deployment.id)
                out_of_time = out_of_time or verdict == "late"
                continue
            started = self.clock()
            try:
                result = await attempt(deployment)
            except QueueFull as error:
                # Refused by the deployment's own queue before its upstream saw anything: not an attempt, and
                # nothing against the upstream's health; a sibling deployment may have room.
                self.state(deployment).breaker.release_probe()
                retired.add(deployment.id)
                last = error
                continue
            except SluiceError as error:
                self._attempted(deployment, outcome)
                self.record(deployment, error, None)
                if not retryable(error):
                    raise
                last = errors[deployment.id] = error
                continue
            except BaseException:
                self._attempted(deployment, outcome)
                self.state(deployment).breaker.release_probe()
                raise
            self._attempted(deployment, outcome)
            self.record(deployment, None, self.clock() - started)
            return deployment, result
        raise _exhausted(route, last, out_of_time)

    def _backoff(
        self,
        route: ModelRoute,
        deployment: Deployment,
        previous: SluiceError,
        last: SluiceError | None,
        deadline: Deadline | None,
        outcome: Outcome,
        fallback_for: Callable[[ModelRoute, SluiceError], ModelRoute | None],
    ) -> Backoff:
        """Before trying a deployment again (``previous``: its last failure): the seconds to wait first, or
        ``stop`` (a fallback model takes the model's failure: go there rather than wait), ``retire`` (its
        Retry-After is longer than we wait), ``late`` (the wait would not leave time for the attempt)."""
        if last is not None and fallback_for(route, last) is not None:
            return "stop"
        config = route.routing or self.routing
        wait = backoff(config, outcome.tried.count(deployment.id) - 1, previous, self.rng)
        if wait is None:
            return "retire"
        if deadline is not None and not deadline.fits(deployment, wait):
            return "late"
        return wait

    def _ready(self, deployment: Deployment, deadline: Deadline | None) -> Turn:
        """Whether ``deployment`` takes the attempt now: its time is not up and its breaker lets it through;
        if so the request's deadline becomes this deployment's."""
        if deadline is not None and not deadline.fits(deployment, 0.0):
            return "late"
        if not self._allows(deployment):
            return "retire"
        if deadline is not None:
            deadline.enter(deployment)
        return "go"

    def _allows(self, deployment: Deployment) -> bool:
        """The breaker's verdict (claiming the half-open probe); an open circuit turning half-open is reported."""
        breaker = self.state(deployment).breaker
        before = breaker.state
        allowed = breaker.allows(self.clock())
        if breaker.state != before and self._on_state is not None:
            self._on_state(deployment, breaker.state)
        return allowed

    def _attempted(self, deployment: Deployment, outcome: Outcome) -> None:
        outcome.attempts += 1
        outcome.tried.append(deployment.id)
        if outcome.attempts > 1:
            outcome.retries += 1
            if self._on_retry is not None:
                self._on_retry(deployment)

    def _fallback(
        self,
        route: ModelRoute,
        error: SluiceError,
        visited: set[str],
        same_format: Callable[[ModelRoute], bool] | None,
    ) -> ModelRoute | None:
        """The first of ``route``'s fallback models that takes this kind of failure and can take the request."""
        kind = fallback_class(error)
        if kind is None:
            return None
        for fallback in route.fallbacks:
            if kind not in fallback.on and "any" not in fallback.on:
                continue
            target = self.catalog.get(fallback.model)
            if target is None or target.name in visited or (same_format is not None and not same_format(target)):
                continue
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


def _exhausted(route: ModelRoute, last: SluiceError | None, out_of_time: bool) -> SluiceError:
    """What a model whose deployments all failed or were passed over answers: its last failure, if any."""
    if last is not None:
        return last
    if out_of_time:
        return UpstreamTimeout("The request exceeded its total deadline.", code="total_timeout")
    return Overloaded(f"No deployment of model '{route.name}' could take the request.", code="no_capacity")
