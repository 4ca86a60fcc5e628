"""The router's attempt loop without I/O: one budget per request, full queues, deadlines, breaker transitions."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from sluice.config import BreakerConfig, ModelFallback, RoutingConfig
from sluice.errors import QueueFull, RateLimited, SluiceError, UpstreamError, UpstreamTimeout
from sluice.routing.breaker import State
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.deadlines import Deadline
from sluice.routing.router import Outcome, Router
from tests.unit.routing.test_routing_logic import Clock, dep


def model(name: str, *deployments: Deployment, **extra: Any) -> ModelRoute:
    return ModelRoute(name, list(deployments), **extra)


def make_router(*routes: ModelRoute, clock: Clock | None = None, **routing: Any) -> tuple[Router, list[State]]:
    catalog = ModelCatalog({})
    for r in routes:
        catalog.add(r)
    states: list[State] = []
    router = Router(
        catalog,
        RoutingConfig(backoff_base=0, **routing),
        BreakerConfig(consecutive_failures=100, open_seconds=30),
        rng=random.Random(0),
        clock=clock or Clock(),
        on_state=lambda _d, state: states.append(state),
    )
    return router, states


def failing(seen: list[str], fails: dict[str, SluiceError]) -> Any:
    async def attempt(d: Deployment) -> str:
        seen.append(d.id)
        error = fails.get(d.id)
        if error is not None:
            raise error
        return d.id

    return attempt


# --- one budget per request ---------------------------------------------------------------------------------


async def test_max_attempts_bounds_the_whole_request_fallbacks_included() -> None:
    backup = model("backup", dep("b1"))
    primary = model("primary", dep("a1"), dep("a2", order=1), fallbacks=[ModelFallback(model="backup")])
    router, _ = make_router(backup, primary, max_attempts=2)
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        await router.run(primary, failing(seen, {"a1": UpstreamError("x"), "a2": UpstreamError("y")}), Outcome())
    assert seen == ["a1", "a2"]  # the budget of 2 is spent before the fallback


async def test_a_fallback_gets_what_the_budget_has_left() -> None:
    backup = model("backup", dep("b1"))
    primary = model("primary", dep("a1"), dep("a2", order=1), fallbacks=[ModelFallback(model="backup")])
    router, _ = make_router(backup, primary, max_attempts=3)
    seen: list[str] = []
    outcome = Outcome()
    chosen, _ = await router.run(primary, failing(seen, {"a1": UpstreamError("x"), "a2": UpstreamError("y")}), outcome)
    assert chosen.id == "b1" and seen == ["a1", "a2", "b1"]
    assert (outcome.attempts, outcome.retries, outcome.fallback_from) == (3, 2, "primary")


async def test_a_listed_fallback_is_preferred_to_retrying_the_same_deployment() -> None:
    backup = model("backup", dep("b1"))
    primary = model("primary", dep("a1"), fallbacks=[ModelFallback(model="backup", on=["upstream_error"])])
    router, _ = make_router(backup, primary, max_attempts=3)
    seen: list[str] = []
    await router.run(primary, failing(seen, {"a1": UpstreamError("x")}), Outcome())
    assert seen == ["a1", "b1"]


async def test_without_a_fallback_the_same_deployment_is_retried_up_to_the_budget() -> None:
    only = model("only", dep("a1"))
    router, _ = make_router(only, max_attempts=3)
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        await router.run(only, failing(seen, {"a1": UpstreamError("x")}), Outcome())
    assert seen == ["a1", "a1", "a1"]


async def test_an_unlisted_failure_kind_retries_instead_of_falling_back() -> None:
    backup = model("backup", dep("b1"))
    primary = model("primary", dep("a1"), fallbacks=[ModelFallback(model="backup", on=["context_window"])])
    router, _ = make_router(backup, primary, max_attempts=2)
    seen: list[str] = []
    with pytest.raises(UpstreamError):
        await router.run(primary, failing(seen, {"a1": UpstreamError("x")}), Outcome())
    assert seen == ["a1", "a1"]


async def test_a_too_long_retry_after_retires_only_that_deployment() -> None:
    pair = model("pair", dep("a1"), dep("a2", order=1))
    router, _ = make_router(pair, max_attempts=4, respect_retry_after_up_to=1)
    seen: list[str] = []
    slow_down = RateLimited("busy", code="upstream_429", headers={"Retry-After": "60"})
    with pytest.raises(UpstreamError):
        await router.run(pair, failing(seen, {"a1": slow_down, "a2": UpstreamError("x")}), Outcome())
    assert seen == ["a1", "a2", "a2", "a2"]  # a1 waits its Retry-After out; a2's own backoff is short


# --- full queues ------------------------------------------------------------------------------------------


def queue_full() -> QueueFull:
    return QueueFull("full", code="queue_full", headers={"Retry-After": "3"})


async def test_a_full_queue_moves_to_a_sibling_without_spending_an_attempt() -> None:
    pair = model("pair", dep("a1"), dep("a2", order=1))
    router, _ = make_router(pair, max_attempts=1)
    seen: list[str] = []
    outcome = Outcome()
    chosen, _ = await router.run(pair, failing(seen, {"a1": queue_full()}), outcome)
    assert chosen.id == "a2" and seen == ["a1", "a2"]
    assert (outcome.attempts, outcome.tried) == (1, ["a2"])
    assert router.state(pair.deployments[0]).calls == 0  # says nothing about a1's upstream


async def test_full_queues_everywhere_answer_429_with_retry_after_and_are_not_retried() -> None:
    pair = model("pair", dep("a1"), dep("a2", order=1))
    router, _ = make_router(pair, max_attempts=5)
    seen: list[str] = []
    with pytest.raises(QueueFull) as refused:
        await router.run(pair, failing(seen, {"a1": queue_full(), "a2": queue_full()}), Outcome())
    assert seen == ["a1", "a2"]
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "3"


# --- deadlines ------------------------------------------------------------------------------------------------


async def test_each_deployment_keeps_its_own_total() -> None:
    loop = asyncio.get_running_loop()
    long, short = dep("long", total=60), dep("short", order=1, total=5)
    pair = model("pair", long, short)
    router, _ = make_router(pair, max_attempts=3)
    seen: list[str] = []
    async with asyncio.timeout(None) as timer:
        deadline = Deadline(timer, loop.time() - 10, None)  # arrived 10 s ago: short's 5 s are spent
        with pytest.raises(UpstreamError):
            await router.run(pair, failing(seen, {"long": UpstreamError("x")}), Outcome(), deadline)
        assert seen == ["long"] * 3  # never short
        assert timer.when() == pytest.approx(deadline.when(long))


async def test_only_out_of_time_deployments_answer_a_total_timeout() -> None:
    loop = asyncio.get_running_loop()
    short = dep("short", total=5)
    router, _ = make_router(model("one", short))
    async with asyncio.timeout(None) as timer:
        deadline = Deadline(timer, loop.time() - 10, None)
        with pytest.raises(UpstreamTimeout) as late:
            await router.run(model("one", short), failing([], {}), Outcome(), deadline)
    assert late.value.code == "total_timeout"


async def test_the_request_total_caps_every_deployment_and_moves_the_timer() -> None:
    loop = asyncio.get_running_loop()
    a = dep("a", total=60)
    async with asyncio.timeout(None) as timer:
        arrived = loop.time()
        deadline = Deadline(timer, arrived, 2.0)
        router, _ = make_router(model("one", a))
        await router.run(model("one", a), failing([], {}), Outcome(), deadline)
        assert timer.when() == pytest.approx(arrived + 2.0)
        assert Deadline(timer, arrived, 600.0).when(a) == pytest.approx(arrived + 60)  # never lengthened


# --- breaker transitions are reported -----------------------------------------------------------------------


async def test_every_circuit_transition_is_reported_half_open_included() -> None:
    clock = Clock()
    a = dep("a")
    only = model("only", a)
    catalog = ModelCatalog({})
    states: list[State] = []
    router = Router(
        catalog,
        RoutingConfig(backoff_base=0, max_attempts=1),
        BreakerConfig(consecutive_failures=1, open_seconds=30),
        rng=random.Random(0),
        clock=clock,
        on_state=lambda _d, state: states.append(state),
    )
    with pytest.raises(UpstreamError):
        await router.run(only, failing([], {"a": UpstreamError("x")}), Outcome())
    clock.now += 31
    seen_during_probe: list[State] = []

    async def probe(d: Deployment) -> str:
        seen_during_probe.append(states[-1])
        return d.id

    await router.run(only, probe, Outcome())
    assert states == ["open", "half_open", "closed"]
    assert seen_during_probe == ["half_open"]
