"""One behavioural suite for every scheduler backend: in-process, Redis and RabbitMQ.

The Redis and RabbitMQ runs talk to the real services on 127.0.0.1 under a fresh prefix per test, and build
two "replicas" (two backend instances with their own connections) where a test needs more than one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from sluice.canonical import Usage
from sluice.config import PriorityClass, SchedulingConfig
from sluice.errors import QueueFull, QueueTimeout
from sluice.scheduling.backend import Request, SchedulerBackend, Slot, WaiterLeft
from sluice.scheduling.book import SlotBook
from sluice.scheduling.local import LocalBackend
from sluice.scheduling.ordering import Policy, Ticket
from sluice.scheduling.rabbitmq import RabbitBackend
from sluice.scheduling.redis import RedisBackend
from tests.support.services import RABBITMQ_URL, REDIS_URL, require_rabbitmq, require_redis

BACKENDS = ["local", "redis", "rabbitmq"]
LEASE = 4.0
DEFAULT = Policy.from_config(SchedulingConfig())


class Cluster:
    """Replicas of one backend kind sharing one namespace (the in-process backend has just the one)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.prefix = "sluice-test-sched-" + secrets.token_hex(4)
        self.replicas: list[SchedulerBackend] = []
        self.clients: list[Redis] = []

    async def replica(self, policy: Policy = DEFAULT) -> SchedulerBackend:
        backend: SchedulerBackend
        if self.kind == "local":
            if self.replicas:
                return self.replicas[0]
            backend = LocalBackend(policy)
        elif self.kind == "redis":
            client = Redis.from_url(REDIS_URL)
            self.clients.append(client)
            backend = RedisBackend(client, policy, prefix=self.prefix, lease=LEASE)
        else:
            backend = RabbitBackend(RABBITMQ_URL, policy, prefix=self.prefix, lease=LEASE)
        await backend.start()
        self.replicas.append(backend)
        return backend

    async def close(self) -> None:
        for backend in self.replicas:
            await backend.close()
        for client in self.clients:
            keys = [k async for k in client.scan_iter(match=self.prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


@pytest.fixture(params=BACKENDS)
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    require_service(request.param)
    found = Cluster(request.param)
    try:
        yield found
    finally:
        await found.close()


def require_service(kind: str) -> None:
    if kind == "redis":
        require_redis()
    elif kind == "rabbitmq":
        require_rabbitmq()


def req(tenant: str = "t", cls: str = "standard", capacity: int = 1, policy: Policy = DEFAULT, **kw: Any) -> Request:
    return Request("dep-1", capacity, tenant, policy.rule(cls), **kw)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a condition on the backend's shared state (there is no event to wait on across replicas)."""
    async with asyncio.timeout(10):
        while not await check():  # noqa: ASYNC110 - the state lives in Redis or RabbitMQ, not in an Event
            await asyncio.sleep(0.01)


async def waiting(backend: SchedulerBackend) -> int:
    return sum(d["waiting"] for d in await backend.snapshot() if d["deployment"] == "dep-1")


def waits(backend: SchedulerBackend, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await waiting(backend) == count

    return check


async def queued(backend: SchedulerBackend, request: Request, log: list[str], name: str) -> asyncio.Task[Slot]:
    """Start a waiter that notes its name when granted and gives the slot back at once; returns once it waits."""
    before = await waiting(backend)

    async def run() -> Slot:
        slot = await backend.acquire(request, 2.0)
        log.append(name)
        slot.release()
        return slot

    task = asyncio.create_task(run())
    await until(waits(backend, before + 1))
    return task


# --- capacity -------------------------------------------------------------------------------------------------------


async def test_a_free_slot_is_granted_at_once(cluster: Cluster) -> None:
    backend = await cluster.replica()
    slot = await backend.acquire(req(), 2.0)
    assert (slot.position, slot.waited, slot.held) == (0, 0.0, True)
    slot.release()


async def test_capacity_is_never_exceeded_and_every_request_is_served(cluster: Cluster) -> None:
    replicas = [await cluster.replica(), await cluster.replica()]
    running, most, served = 0, 0, 0

    async def one(n: int) -> None:
        nonlocal running, most, served
        slot = await replicas[n % 2].acquire(req(f"t{n % 3}", capacity=2), 2.0)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        served += 1
        slot.release(Usage(10, 5))

    async with asyncio.timeout(30):
        await asyncio.gather(*(one(n) for n in range(12)))
    assert most == 2 and served == 12


async def test_a_released_slot_goes_to_the_waiter_with_its_place_at_enqueue(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("a"), 2.0)
    task = asyncio.create_task(backend.acquire(req("b"), 2.0))
    await until(waits(backend, 1))
    holder.release(Usage(1, 1))
    slot = await asyncio.wait_for(task, 10)
    assert slot.position == 1 and slot.waited > 0
    slot.release()


async def test_replicas_share_one_capacity(cluster: Cluster) -> None:
    first, second = await cluster.replica(), await cluster.replica()
    holder = await first.acquire(req("a"), 2.0)
    task = asyncio.create_task(second.acquire(req("b"), 2.0))
    await until(waits(first, 1))
    assert not task.done()
    holder.release()
    (await asyncio.wait_for(task, 10)).release()


# --- order ----------------------------------------------------------------------------------------------------------


async def test_a_higher_class_is_granted_first(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("x"), 2.0)
    log: list[str] = []
    tasks = [
        await queued(backend, req("a", "batch"), log, "batch"),
        await queued(backend, req("b", "standard"), log, "standard"),
        await queued(backend, req("c", "interactive"), log, "interactive"),
    ]
    holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert log == ["interactive", "standard", "batch"]


async def test_within_a_class_the_tenant_with_least_service_goes_first(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("heavy"), 2.0)
    log: list[str] = []
    tasks = [
        await queued(backend, req("heavy"), log, "heavy-1"),
        await queued(backend, req("heavy"), log, "heavy-2"),
        await queued(backend, req("light"), log, "light"),
    ]
    holder.release(Usage(1000, 1000))  # heavy has now been served 3000 weighted tokens; light nothing
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert log == ["light", "heavy-1", "heavy-2"]


async def test_an_abandoned_call_is_charged_its_prompt_at_the_grant(cluster: Cluster) -> None:
    backend = await cluster.replica()
    fair = await backend.acquire(req("fair", capacity=2, upfront=100.0), 2.0)
    abandoning = await backend.acquire(req("abandon", capacity=2, upfront=1000.0), 2.0)
    log: list[str] = []
    tasks = [
        await queued(backend, req("abandon", capacity=2, upfront=1000.0), log, "abandon"),
        await queued(backend, req("fair", capacity=2, upfront=100.0), log, "fair"),
    ]
    abandoning.release()  # its client timed out: no usage at all, yet its prompt was charged when it started
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert log[0] == "fair"  # charged nothing, "abandon" would have gone first (it queued first)
    fair.release(Usage(100, 0))


async def test_the_release_settles_what_the_upfront_charge_did_not_cover(cluster: Cluster) -> None:
    backend = await cluster.replica()
    a = await backend.acquire(req("a", capacity=2, upfront=100.0), 2.0)
    b = await backend.acquire(req("b", capacity=2, upfront=500.0), 2.0)  # b's counter: at least 500
    a.release(Usage(100, 1000))  # a is settled at 100 + 2 x 1000 = 2100 in all, well past b
    log: list[str] = []
    holder = await backend.acquire(req("x", capacity=2), 2.0)
    tasks = [
        await queued(backend, req("a", capacity=2), log, "a"),
        await queued(backend, req("b", capacity=2), log, "b"),
    ]
    b.release(Usage(500, 0))
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert log[0] == "b"
    holder.release()


async def test_a_request_past_its_aging_bound_goes_before_a_fresh_interactive_one(cluster: Cluster) -> None:
    policy = Policy.from_config(SchedulingConfig(aging_seconds=1.5))  # batch: 0.5 s per level, aged at 1.5 s
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("x", policy=policy), 2.0)
    log: list[str] = []
    old = await queued(backend, req("a", "batch", policy=policy), log, "batch")
    await asyncio.sleep(1.6)
    fresh = await queued(backend, req("b", "interactive", policy=policy), log, "interactive")
    holder.release()
    await asyncio.wait_for(asyncio.gather(old, fresh), 10)
    assert log == ["batch", "interactive"]


async def test_a_burst_held_back_by_a_higher_class_climbs_and_goes_through_together(cluster: Cluster) -> None:
    policy = Policy.from_config(
        SchedulingConfig(
            classes=[
                PriorityClass(name="interactive", weight=2, age_after=30),
                PriorityClass(name="batch", weight=1, age_after=0.5),  # at the top level after 0.5 s
            ],
            default_class="interactive",
        )
    )
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("flood", "interactive", policy=policy), 2.0)
    log: list[str] = []
    tasks = [await queued(backend, req("flood", "interactive", policy=policy), log, "flood") for _ in range(3)]
    tasks += [await queued(backend, req("burst", "batch", policy=policy), log, "burst") for _ in range(3)]
    await asyncio.sleep(0.7)  # the batch class has climbed to the top; its tenant is far below the flooder
    holder.release(Usage(100_000, 0))
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # With the levels on the line's clock, each grant sent the rest of the burst back to the batch level.
    assert log == ["burst"] * 3 + ["flood"] * 3


async def test_a_flooders_backlog_does_not_climb_past_a_fresh_request_of_its_class(cluster: Cluster) -> None:
    # A clock per request would put all of A's backlog a level above B's fresh request once it had waited one
    # step (a variant of this round measured B at 5x its solo latency under a same-class flood).
    policy = Policy.from_config(
        SchedulingConfig(
            classes=[
                PriorityClass(name="interactive", weight=2, age_after=30),
                PriorityClass(name="standard", weight=1, age_after=0.5),
            ]
        )
    )
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("A", policy=policy, upfront=100.0), 2.0)
    log: list[str] = []
    tasks = [await queued(backend, req("A", policy=policy, upfront=100.0), log, "A") for _ in range(3)]
    await asyncio.sleep(0.7)  # A's requests have waited a step: on their own clocks they would be a level up
    tasks.append(await queued(backend, req("B", policy=policy, upfront=100.0), log, "B"))
    holder.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # B, returning, goes first on the tie; with a clock per request A's whole backlog would be a level above it.
    assert log == ["B", "A", "A", "A"]


# --- leaving the line -----------------------------------------------------------------------------------------------


async def test_a_cancelled_waiter_leaves_the_line_at_once_and_gets_nothing(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("a"), 2.0)
    task = asyncio.create_task(backend.acquire(req("b"), 2.0))
    await until(waits(backend, 1))
    task.cancel()
    await until(waits(backend, 0))
    holder.release()
    slot = await asyncio.wait_for(backend.acquire(req("c"), 2.0), 10)  # the slot was not left with the leaver
    assert slot.position == 0
    slot.release()


async def test_a_slot_granted_as_its_waiter_leaves_is_passed_on(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("a"), 2.0)
    leaving = asyncio.create_task(backend.acquire(req("b"), 2.0))
    await until(waits(backend, 1))
    holder.release()
    leaving.cancel()  # in the same instant: it may or may not have been granted; either way the slot goes on
    slot = await asyncio.wait_for(backend.acquire(req("c"), 2.0), 10)
    slot.release()
    again = await asyncio.wait_for(backend.acquire(req("d"), 2.0), 10)
    assert again.position == 0
    again.release()


async def test_a_waiter_whose_client_left_is_never_granted_and_its_slot_goes_on(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("x"), 2.0)
    connected = True
    gone = asyncio.create_task(backend.acquire(req("a", alive=lambda: connected), 2.0))
    await until(waits(backend, 1))
    log: list[str] = []
    after = await queued(backend, req("b"), log, "b")
    connected = False  # the client left; nothing has cancelled its waiter yet
    holder.release()
    with pytest.raises(WaiterLeft):
        await asyncio.wait_for(gone, 10)
    await asyncio.wait_for(after, 10)
    assert log == ["b"]
    slot = await asyncio.wait_for(backend.acquire(req("c"), 2.0), 10)  # nothing was left held by the leaver
    assert slot.position == 0
    slot.release()


async def test_a_full_class_is_refused_at_once_while_a_higher_class_still_gets_in(cluster: Cluster) -> None:
    policy = Policy.from_config(
        SchedulingConfig(
            classes=[
                PriorityClass(name="interactive", weight=3),
                PriorityClass(name="standard", weight=2),
                PriorityClass(name="batch", weight=1, max_queue=1),
            ]
        )
    )
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("x", policy=policy), 2.0)
    first = asyncio.create_task(backend.acquire(req("a", "batch", policy=policy), 2.0))
    await until(waits(backend, 1))
    with pytest.raises(QueueFull) as refused:
        await backend.acquire(req("b", "batch", policy=policy), 2.0)
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    higher = asyncio.create_task(backend.acquire(req("c", "interactive", policy=policy), 2.0))
    await until(waits(backend, 2))
    holder.release()
    (await asyncio.wait_for(higher, 10)).release()
    (await asyncio.wait_for(first, 10)).release()


async def test_a_flooding_tenant_is_refused_at_its_share_while_a_light_one_gets_in_first_try(cluster: Cluster) -> None:
    policy = Policy.from_config(SchedulingConfig(classes=[PriorityClass(name="standard", weight=1, max_queue=4)]))
    assert policy.rule("standard").max_queue_per_tenant == 2  # unset: half the class's bound
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("x", policy=policy), 2.0)
    waiting_tasks = []
    for n in range(2):
        waiting_tasks.append(asyncio.create_task(backend.acquire(req("flood", policy=policy), 2.0)))
        await until(waits(backend, n + 1))
    with pytest.raises(QueueFull) as flooder:
        await backend.acquire(req("flood", policy=policy), 2.0)
    assert "Your tenant already has its limit of 2 'standard' requests" in flooder.value.message
    assert int(flooder.value.headers["Retry-After"]) >= 1
    for n, tenant in enumerate(["light", "other"]):  # first try, though the flooder is at its bound
        waiting_tasks.append(asyncio.create_task(backend.acquire(req(tenant, policy=policy), 2.0)))
        await until(waits(backend, 3 + n))
    with pytest.raises(QueueFull) as everyone:  # the class's own bound still holds for all tenants together
        await backend.acquire(req("late", policy=policy), 2.0)
    assert "holds its limit of 4 waiting 'standard' requests" in everyone.value.message
    holder.release()
    for task in waiting_tasks:
        (await asyncio.wait_for(task, 10)).release()


async def test_a_request_waiting_past_its_class_max_wait_is_refused(cluster: Cluster) -> None:
    policy = Policy.from_config(
        SchedulingConfig(
            aging_seconds=0.3,
            classes=[
                PriorityClass(name="standard", weight=2),
                PriorityClass(name="batch", weight=1, max_wait=0.5),
            ],
        )
    )
    backend = await cluster.replica(policy)
    holder = await backend.acquire(req("x", policy=policy), 2.0)
    with pytest.raises(QueueTimeout) as refused:
        await asyncio.wait_for(backend.acquire(req("a", "batch", policy=policy), 2.0), 10)
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
    assert await waiting(backend) == 0
    holder.release()


# --- visibility -----------------------------------------------------------------------------------------------------


async def test_snapshot_and_own_waiting_list(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("a", owner="key:1"), 2.0)
    task = asyncio.create_task(backend.acquire(req("b", "batch", owner="key:2", note="gpt-x"), 2.0))
    await until(waits(backend, 1))
    (snap,) = [d for d in await backend.snapshot() if d["deployment"] == "dep-1"]
    assert (snap["capacity"], snap["in_flight"], snap["waiting"]) == (1, 1, 1)
    assert {c["name"]: c["waiting"] for c in snap["classes"]} == {"interactive": 0, "standard": 0, "batch": 1}
    assert snap["oldest_wait_ms"] is not None and snap["oldest_wait_ms"] >= 0
    assert [t["tenant"] for t in snap["tenants"]] == ["a", "b"]
    mine = await backend.waiting_of("key:2")
    assert [(w["deployment"], w["model"], w["priority"], w["position"]) for w in mine] == [
        ("dep-1", "gpt-x", "batch", 1)
    ]
    assert await backend.waiting_of("key:1") == []
    holder.release()
    (await asyncio.wait_for(task, 10)).release()


async def test_a_returning_light_tenant_is_told_the_place_fair_share_gives_it(cluster: Cluster) -> None:
    backend = await cluster.replica()
    holder = await backend.acquire(req("flood", upfront=100.0), 2.0)
    log: list[str] = []
    flood = [await queued(backend, req("flood", upfront=100.0, owner="key:flood"), log, "flood") for _ in range(5)]
    light_slot: list[Slot] = []

    async def light() -> None:
        slot = await backend.acquire(req("light", upfront=100.0, owner="key:light"), 2.0)
        light_slot.append(slot)
        log.append("light")
        slot.release()

    task = asyncio.create_task(light())
    await until(waits(backend, 6))
    (mine,) = await backend.waiting_of("key:light")
    assert mine["position"] == 1  # by the sort keys of the moment it tied with the flooder: 6th
    places = [w["position"] for w in await backend.waiting_of("key:flood")]
    assert places == [2, 3, 4, 5, 6]
    holder.release(Usage(100, 10))
    await asyncio.wait_for(asyncio.gather(task, *flood), 10)
    assert log[0] == "light" and light_slot[0].position == 1


async def test_a_replica_that_never_served_a_deployment_sees_its_whole_line(cluster: Cluster) -> None:
    serving = await cluster.replica()
    holder = await serving.acquire(req("a", owner="key:1"), 2.0)
    task = asyncio.create_task(serving.acquire(req("b", owner="key:2", note="gpt-x"), 2.0))
    await until(waits(serving, 1))
    other = await cluster.replica()  # the same one for the in-process backend; a fresh replica for the others
    (snap,) = [d for d in await other.snapshot(known=["dep-1"]) if d["deployment"] == "dep-1"]
    assert (snap["capacity"], snap["in_flight"], snap["waiting"]) == (1, 1, 1)
    assert [w["model"] for w in await other.waiting_of("key:2", known=["dep-1"])] == ["gpt-x"]
    holder.release()
    (await asyncio.wait_for(task, 10)).release()


# --- the shared backends make the in-process book's choices -------------------------------------------------------

WAITERS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["interactive", "standard", "batch"]),
        st.integers(0, 3),  # thousands of tokens served
        st.integers(0, 2),  # hundreds of prompt tokens charged at the grant
    ),
    min_size=1,
    max_size=7,
)


def book_order(waiters: list[tuple[str, str, int, int]]) -> list[int]:
    """The grant order the in-process book gives: a holder, the waiters in turn, each released with its charge."""
    policy = Policy.from_config(SchedulingConfig(aging_seconds=3000))
    book = SlotBook("dep-1", 1, policy)
    book.admit(Ticket("holder", "h", policy.rule("standard"), 0.0, 0), 0.0)
    for n, (tenant, cls, _, upfront) in enumerate(waiters):
        ticket = Ticket(str(n), tenant, policy.rule(cls), 0.001 * (n + 1), 0, upfront=100.0 * upfront)
        book.admit(ticket, 0.001 * (n + 1))
    order: list[int] = []
    finishing, charge, now = "holder", 500.0, 1.0
    while True:
        book.finish(finishing, charge, now)
        granted = book.grant(now)
        if not granted:
            return order
        finishing = granted[0].id
        order.append(int(finishing))
        _, _, served, upfront = waiters[int(finishing)]
        charge, now = 1000.0 * served - 100.0 * upfront, now + 0.001


async def backend_order(kind: str, waiters: list[tuple[str, str, int, int]]) -> list[int]:
    policy = Policy.from_config(SchedulingConfig(aging_seconds=3000))
    cluster = Cluster(kind)
    try:
        backend = await cluster.replica(policy)
        holder = await backend.acquire(req("h", policy=policy), 2.0)
        order: list[int] = []

        async def wait(n: int, tenant: str, cls: str, charge: int, upfront: int) -> None:
            slot = await backend.acquire(req(tenant, cls, policy=policy, upfront=100.0 * upfront), 2.0)
            order.append(n)
            slot.release(Usage(1000 * charge, 0))

        tasks = []
        for n, (tenant, cls, charge, upfront) in enumerate(waiters):
            tasks.append(asyncio.create_task(wait(n, tenant, cls, charge, upfront)))
            await until(waits(backend, n + 1))
        holder.release(Usage(500, 0))
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        return order
    finally:
        await cluster.close()


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(waiters=WAITERS)
def test_the_grant_order_is_the_in_process_books(kind: str, waiters: list[tuple[str, str, int, int]]) -> None:
    require_service(kind)
    assert asyncio.run(backend_order(kind, waiters)) == book_order(waiters)
