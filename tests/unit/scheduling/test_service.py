"""The scheduler facade (principal -> tenant and class, unlimited deployments, metrics, the synchronous fast path)
and the validation of the ``scheduling`` settings."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from pydantic import ValidationError

from sluice.canonical import Usage
from sluice.config import PriorityClass, ProviderConfig, SchedulingConfig, Settings, Timeouts
from sluice.identity.principal import Principal
from sluice.observability.metrics import Metrics
from sluice.providers.base import Target
from sluice.providers.mock import MockProvider
from sluice.routing.catalog import Deployment
from sluice.scheduling.backend import Slot
from sluice.scheduling.local import LocalBackend
from sluice.scheduling.service import Scheduler

PROVIDER = MockProvider(ProviderConfig(name="p", kind="mock"))


def deployment(capacity: int | None = 1) -> Deployment:
    return Deployment("m#0:p/m", "m", PROVIDER, Target("m", Timeouts()), capacity=capacity)


def key(workspace: str = "w1", priority: str = "standard", kid: str = "k1") -> Principal:
    return Principal(kind="key", id=kid, role="member", workspace_id=workspace, key_id=kid, priority=priority)


def run_now(coro: Coroutine[Any, Any, Slot]) -> Slot:
    """Run a coroutine that must finish without suspending once (no awaiting, no task, no lock)."""
    try:
        coro.send(None)
    except StopIteration as done:
        slot: Slot = done.value
        return slot
    coro.close()
    raise AssertionError("acquire suspended although a slot was free")


def test_a_free_slot_is_taken_without_suspending() -> None:
    scheduler = Scheduler.local(SchedulingConfig())
    slot = run_now(scheduler.acquire(deployment(2), key(), "m"))
    second = run_now(scheduler.acquire(deployment(2), key(), "m"))
    assert slot.held and second.held and (slot.position, slot.waited) == (0, 0.0)
    slot.release(Usage(10, 5))
    second.release()


def test_a_deployment_without_capacity_has_no_queue() -> None:
    scheduler = Scheduler.local(SchedulingConfig())
    slots = [run_now(scheduler.acquire(deployment(None), key(), "m")) for _ in range(100)]
    assert not any(s.held for s in slots)
    assert asyncio.run(scheduler.snapshot())["deployments"] == []


async def test_principals_map_to_their_tenant_and_class() -> None:
    scheduler = Scheduler.local(SchedulingConfig())
    holder = await scheduler.acquire(deployment(), key("w1", "interactive", "k1"), "m")

    async def through(principal: Principal | None) -> None:
        (await scheduler.acquire(deployment(), principal, "m")).release()

    waiters = [
        asyncio.create_task(through(key("w2", "batch", "k2"))),
        asyncio.create_task(through(key("w2", "no-such-class", "k3"))),
        asyncio.create_task(through(None)),
    ]
    await asyncio.sleep(0)
    (snap,) = (await scheduler.snapshot())["deployments"]
    assert {c["name"]: c["waiting"] for c in snap["classes"]} == {"interactive": 0, "standard": 2, "batch": 1}
    assert {t["tenant"]: (t["waiting"], t["in_flight"]) for t in snap["tenants"]} == {
        "w1": (0, 1),
        "w2": (2, 0),
        "anonymous": (1, 0),
    }
    mine = await scheduler.waiting(key("w2", "batch", "k2"))
    assert [(w["priority"], w["model"]) for w in mine] == [("batch", "m")]
    holder.release()
    await asyncio.wait_for(asyncio.gather(*waiters), 5)


async def test_queue_waits_are_observed_per_deployment_and_class() -> None:
    metrics = Metrics()
    scheduler = Scheduler.local(SchedulingConfig(), metrics)
    holder = await scheduler.acquire(deployment(), key(), "m")
    waiter = asyncio.create_task(scheduler.acquire(deployment(), key(priority="batch"), "m"))
    await asyncio.sleep(0.01)
    scheduler.update_depth_gauges()
    depth = metrics.registry.get_sample_value("sluice_queue_depth", {"deployment": "m#0:p/m", "priority": "batch"})
    assert depth == 1.0
    holder.release()
    (await waiter).release()
    labels = {"deployment": "m#0:p/m", "priority": "batch"}
    assert metrics.registry.get_sample_value("sluice_queue_wait_seconds_count", labels) == 1.0
    assert metrics.registry.get_sample_value("sluice_queue_wait_seconds_sum", labels) > 0


@pytest.mark.parametrize(
    ("scheduling", "problem"),
    [
        ({"classes": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}], "default_class": "a"}, "names"),
        ({"classes": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], "default_class": "a"}, "weights"),
        ({"classes": [{"name": "a", "weight": 1}]}, "default_class"),
        ({"classes": [{"name": "standard", "weight": 1, "max_wait": 5}], "aging_seconds": 30}, "aging bound"),
        ({"backend": "redis"}, "redis_url"),
        ({"backend": "rabbitmq"}, "rabbitmq_url"),
    ],
)
def test_scheduling_settings_are_refused_with_the_reason(scheduling: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate({"scheduling": scheduling})


def test_each_class_max_wait_is_checked_against_its_own_bound() -> None:
    config = SchedulingConfig(
        aging_seconds=30,
        classes=[
            PriorityClass(name="standard", weight=2, max_wait=15),  # bound 15 s
            PriorityClass(name="batch", weight=1, max_wait=30),  # bound 30 s
        ],
    )
    assert [c.max_wait for c in config.classes] == [15, 30]


def counters(scheduler: Scheduler) -> dict[str, float]:
    backend = scheduler.backend
    assert isinstance(backend, LocalBackend)
    return backend.books["m#0:p/m"].fair.counters


def test_the_prompt_is_charged_at_the_grant_and_the_rest_on_release() -> None:
    scheduler = Scheduler.local(SchedulingConfig(output_token_weight=2.0))
    other = run_now(scheduler.acquire(deployment(2), key("w2"), "m"))  # keeps the counters from being forgotten
    slot = run_now(scheduler.acquire(deployment(2), key("w1"), "m", prompt_tokens=lambda: 40))
    assert counters(scheduler)["w1"] == 40.0
    slot.release(Usage(50, 10))  # the upstream counted 50 prompt tokens: settled at 50 + 2 x 10 in all
    assert counters(scheduler)["w1"] == 70.0
    other.release()


def test_an_abandoned_call_is_charged_its_prompt_and_the_output_its_time_would_have_generated() -> None:
    scheduler = Scheduler.local(SchedulingConfig(output_token_weight=2.0))
    other = run_now(scheduler.acquire(deployment(2), key("w2"), "m"))
    answered = run_now(scheduler.acquire(deployment(2), key("w1"), "m", prompt_tokens=lambda: 10))
    answered.granted_at -= 2.0  # held 2 s for 100 output tokens: 100 weighted tokens a second
    answered.release(Usage(10, 100))
    before = counters(scheduler)["w1"]
    abandoned = run_now(scheduler.acquire(deployment(2), key("w1"), "m", prompt_tokens=lambda: 10))
    assert counters(scheduler)["w1"] == before + 10.0  # the prompt, at the grant
    abandoned.granted_at -= 1.0  # its client timed out after a second: no usage came back
    abandoned.release(None)
    # Settled at what it consumed: its prompt and a second of output at 100 weighted tokens a second.
    assert counters(scheduler)["w1"] == pytest.approx(before + 10.0 + 100.0, rel=0.01)
    other.release()
