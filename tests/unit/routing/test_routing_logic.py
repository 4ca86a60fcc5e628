"""Routing logic without I/O: strategies, the circuit breaker, retry policy, and the router's attempt loop."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from sluice.config import BreakerConfig, ModelFallback, ProviderConfig, RoutingConfig, Timeouts
from sluice.errors import (
    InvalidRequest,
    Overloaded,
    QueueFull,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from sluice.providers.base import Target
from sluice.providers.mock import MockProvider
from sluice.routing.breaker import CircuitBreaker
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.retry import backoff, fallback_class, retryable
from sluice.routing.router import Outcome, Router
from sluice.routing.strategies import least_busy, lowest_latency, ordered, weighted_order

PROVIDER = MockProvider(ProviderConfig(name="p", kind="mock"))


def dep(name: str, weight: float = 1.0, order: int = 0, total: float = 600.0) -> Deployment:
    return Deployment(name, "m", PROVIDER, Target(name, Timeouts(total=total)), weight=weight, order=order)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- strategies -------------------------------------------------------------------------------------------------


def test_weighted_split_follows_the_weights() -> None:
    rng = random.Random(7)
    items = [dep("a", 1), dep("b", 3)]
    firsts = Counter(weighted_order(items, lambda d: d.weight, rng)[0].id for _ in range(20_000))
    assert firsts["b"] / 20_000 == pytest.approx(0.75, abs=0.02)


def test_ordered_tries_tiers_in_order() -> None:
    rng = random.Random(1)
    items = [dep("backup", order=1), dep("primary-a"), dep("primary-b")]
    for _ in range(50):
        order = [d.id for d in ordered(items, lambda d: d.order, lambda d: d.weight, rng)]
        assert set(order[:2]) == {"primary-a", "primary-b"} and order[2] == "backup"


def test_least_busy_prefers_the_emptiest() -> None:
    busy = {"a": 5, "b": 0, "c": 2}
    items = [dep(n) for n in busy]
    assert [d.id for d in least_busy(items, lambda d: busy[d.id], random.Random(0))] == ["b", "c", "a"]


def test_lowest_latency_leads_with_the_faster_of_two() -> None:
    latency = {"fast": 0.05, "slow": 0.9, "mid": 0.3}
    items = [dep(n) for n in latency]
    rng = random.Random(3)
    leads = Counter(lowest_latency(items, lambda d: latency[d.id], rng)[0].id for _ in range(3000))
    assert leads["slow"] == 0  # the slowest never wins a pair
    assert leads["fast"] > leads["mid"]


def test_unmeasured_deployments_get_measured() -> None:
    items = [dep("known"), dep("new")]
    latency = {"known": 0.1, "new": None}
    assert lowest_latency(items, lambda d: latency[d.id], random.Random(0))[0].id == "new"


# --- circuit breaker --------------------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_then_probes() -> None:
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=3, open_seconds=10))
    for _ in range(3):
        assert breaker.allows(0)
        breaker.record(False, 0)
    assert breaker.state == "open" and not breaker.allows(5)
    assert breaker.allows(11) and breaker.state == "half_open"
    assert not breaker.allows(11)  # one probe at a time
    breaker.record(True, 11)
    assert breaker.state == "closed" and breaker.allows(12)


def test_failed_probe_reopens() -> None:
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=1, open_seconds=10))
    breaker.record(False, 0)
    assert breaker.allows(10)
    breaker.record(False, 10)
    assert breaker.state == "open" and not breaker.allows(15) and breaker.allows(20)


def test_breaker_opens_on_failure_ratio() -> None:
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=100, failure_ratio=0.5, window=10, minimum_calls=10))
    for i in range(10):
        breaker.record(i % 2 == 0, 0)
    assert breaker.state == "open"


# --- retry policy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (UpstreamError("down"), True),
        (UpstreamTimeout("slow"), True),
        (RateLimited("busy", code="upstream_429"), True),
        (RateLimited("limit", code="rpm_limit"), False),
        (UpstreamRejected("bad", status=400), False),
        (InvalidRequest("bad"), False),
        (QueueFull("queue", code="queue_full"), False),  # moves to a sibling deployment instead (router)
        (Overloaded("none free", code="no_capacity"), True),
        (Overloaded("limits", code="limits_unavailable"), False),
    ],
)
def test_what_is_retried(error: Any, expected: bool) -> None:
    assert retryable(error) is expected


def test_backoff_honours_retry_after_within_the_cap() -> None:
    config = RoutingConfig(respect_retry_after_up_to=5)
    rng = random.Random(0)
    assert backoff(config, 0, RateLimited("x", code="upstream_429", headers={"Retry-After": "2"}), rng) == 2.0
    assert backoff(config, 0, RateLimited("x", code="upstream_429", headers={"Retry-After": "60"}), rng) is None
    assert 0 <= (backoff(config, 3, UpstreamError("x"), rng) or 0) <= config.backoff_max


def test_context_window_errors_are_recognised() -> None:
    error = UpstreamRejected("This model's maximum context length is 8192 tokens", status=400)
    assert fallback_class(error) == "context_window"


# --- the router's loop -----------------------------------------------------------------------------------------


def route(*deployments: Deployment, **extra: Any) -> ModelRoute:
    return ModelRoute("m", list(deployments), **extra)


def router(catalog: ModelCatalog | None = None, **routing: Any) -> Router:
    return Router(
        catalog or ModelCatalog({}),
        RoutingConfig(backoff_base=0, **routing),
        BreakerConfig(consecutive_failures=2),
        rng=random.Random(0),
        clock=Clock(),
    )


async def test_a_failing_deployment_moves_to_the_next() -> None:
    calls: list[str] = []

    async def attempt(d: Deployment) -> str:
        calls.append(d.id)
        if d.id == "a":
            raise UpstreamError("down")
        return d.id

    outcome = Outcome()
    chosen, result = await router().run(route(dep("a"), dep("b", order=1)), attempt, outcome)
    assert (chosen.id, result, calls) == ("b", "b", ["a", "b"])
    assert (outcome.attempts, outcome.retries) == (2, 1)


async def test_non_retryable_errors_are_not_retried() -> None:
    calls: list[str] = []

    async def attempt(d: Deployment) -> str:
        calls.append(d.id)
        raise UpstreamRejected("your fault", status=400)

    with pytest.raises(UpstreamRejected):
        await router().run(route(dep("a"), dep("b", order=1)), attempt, Outcome())
    assert calls == ["a"]


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    calls: list[str] = []

    async def attempt(d: Deployment) -> str:
        calls.append(d.id)
        raise UpstreamTimeout(f"{d.id} slow")

    with pytest.raises(UpstreamTimeout):
        await router(max_attempts=3).run(route(dep("only")), attempt, Outcome())
    assert calls == ["only", "only"]  # the breaker (2 failures) opens before the third


async def test_open_circuit_gets_no_traffic_until_its_probe() -> None:
    clock = Clock()
    r = Router(
        ModelCatalog({}),
        RoutingConfig(backoff_base=0),
        BreakerConfig(consecutive_failures=1, open_seconds=30),
        rng=random.Random(0),
        clock=clock,
    )
    a, b = dep("a"), dep("b", order=1)
    seen: list[str] = []
    fail_a = True

    async def attempt(d: Deployment) -> str:
        seen.append(d.id)
        if d.id == "a" and fail_a:
            raise UpstreamError("down")
        return d.id

    await r.run(route(a, b), attempt, Outcome())
    assert seen == ["a", "b"]
    seen.clear()
    for _ in range(5):
        await r.run(route(a, b), attempt, Outcome())
    assert seen == ["b"] * 5
    clock.now += 31
    fail_a = False
    seen.clear()
    await r.run(route(a, b), attempt, Outcome())
    assert seen == ["a"]  # the half-open probe, which succeeds and closes the circuit
    assert r.state(a).breaker.state == "closed"


async def test_fallback_model_on_listed_failures() -> None:
    big = route(dep("big-1"))
    big.name = "big"
    catalog = ModelCatalog({})
    catalog.add(big)
    small = route(dep("small-1"), fallbacks=[ModelFallback(model="big", on=["context_window"])])
    seen: list[str] = []

    async def attempt(d: Deployment) -> str:
        seen.append(d.id)
        if d.id == "small-1":
            raise UpstreamRejected("maximum context length exceeded", status=400)
        return d.id

    outcome = Outcome()
    chosen, _ = await router(catalog).run(small, attempt, outcome)
    assert chosen.id == "big-1" and seen == ["small-1", "big-1"] and outcome.fallback_from == "m"


async def test_no_usable_deployment_is_a_503() -> None:
    r = router()
    a = dep("a")
    r.state(a).healthy = False

    async def attempt(d: Deployment) -> str:
        return d.id

    with pytest.raises(Overloaded) as caught:
        await r.run(route(a), attempt, Outcome())
    assert caught.value.status == 503 and caught.value.code == "no_healthy_deployment"
