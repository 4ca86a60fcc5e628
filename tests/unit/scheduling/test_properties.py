"""Property tests of the ordering in a simulated busy system (hypothesis), and of the book's bookkeeping.

The simulation is a discrete-event model of one deployment: ``capacity`` slots, every request holding its slot
for ``service`` seconds, a flooding tenant that always has a backlog, and quieter tenants that send one request
at a time from random classes at random moments. The guarantee under test: a request alone in its line (its
tenant has nothing else waiting in its class) never waits longer than its class's aging bound while the upstream
is serving, whoever floods it — as long as no more lines than there are slots reach their bounds together (here:
one flooding line plus at most ``capacity - 1`` quiet tenants).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.config import SchedulingConfig
from sluice.scheduling.book import Outcome, SlotBook
from sluice.scheduling.ordering import Policy, Ticket

CLASSES = ["interactive", "standard", "batch"]


@dataclass
class Quiet:
    tenant: str
    plan: list[tuple[str, float]]  # (class, think time before sending) per request, in order
    charge: float = 100.0  # weighted tokens each of its requests is charged (the flood's are charged 10)


@st.composite
def busy_systems(draw: st.DrawFn) -> tuple[int, float, float, str, list[Quiet]]:
    capacity = draw(st.integers(2, 4))
    service = draw(st.sampled_from([0.25, 0.5, 1.0]))
    aging = draw(st.floats(6.0, 40.0)) * service  # the top class's bound is at least twice a service
    flood_class = draw(st.sampled_from(CLASSES))
    quiet = [
        Quiet(
            f"q{i}",
            draw(st.lists(st.tuples(st.sampled_from(CLASSES), st.floats(0.01, 20.0)), min_size=1, max_size=6)),
            # Heavy quiet tenants lose to the flood on fair share: only aging gets them through.
            draw(st.sampled_from([1.0, 100.0, 10_000.0])),
        )
        for i in range(draw(st.integers(1, capacity - 1)))
    ]
    return capacity, service, aging, flood_class, quiet


def simulate(
    capacity: int, service: float, aging: float, flood_class: str, quiet: list[Quiet]
) -> list[tuple[str, float, float]]:
    """Run until every quiet request is served; returns (class, waited, bound) for each quiet request."""
    policy = Policy.from_config(SchedulingConfig(aging_seconds=aging))
    book = SlotBook("d", capacity, policy)
    events: list[tuple[float, int, str, str]] = []  # (time, order, kind, ticket or tenant); finishes go first
    counter = iter(range(10**9))
    arrived: dict[str, float] = {}
    results: list[tuple[str, float, float]] = []
    backlog = 3 * capacity

    def send(tenant: str, cls: str, now: float) -> None:
        tid = f"{tenant}-{next(counter)}"
        arrived[tid] = now
        if book.admit(Ticket(tid, tenant, policy.rule(cls), now, 0), now).outcome is Outcome.GRANTED:
            started(tid, now)

    def started(tid: str, now: float) -> None:
        heapq.heappush(events, (now + service, 0, "finish", tid))
        if not tid.startswith("flood"):
            tenant = tid.split("-")[0]
            cls = plans[tenant][0][0]
            results.append((cls, now - arrived[tid], policy.rule(cls).bound))

    plans = {q.tenant: list(q.plan) for q in quiet}
    charges = {q.tenant: q.charge for q in quiet}
    for _ in range(backlog):
        send("flood", flood_class, 0.0)
    for q in quiet:  # the first quiet requests come once the first services have finished (headroom learnt)
        heapq.heappush(events, (service + q.plan[0][1], 1, "send", q.tenant))
    while any(plans.values()):
        now, _, kind, subject = heapq.heappop(events)
        if kind == "finish":
            book.finish(subject, charges.get(subject.split("-")[0], 10.0), now)
            if subject.startswith("flood"):
                send("flood", flood_class, now)  # the flood keeps its backlog
            else:
                tenant = subject.split("-")[0]
                plans[tenant].pop(0)
                if plans[tenant]:
                    heapq.heappush(events, (now + plans[tenant][0][1], 1, "send", tenant))
        else:
            send(subject, plans[subject][0][0], now)
        for ticket in book.grant(now):
            started(ticket.id, now)
        assert len(book.running) <= capacity
    return results


@settings(max_examples=150, deadline=None)
@given(busy_systems())
def test_no_request_alone_in_its_line_waits_past_its_aging_bound(
    system: tuple[int, float, float, str, list[Quiet]],
) -> None:
    for cls, waited, bound in simulate(*system):
        assert waited <= bound + 1e-9, (cls, waited, bound)


def test_the_simulation_is_busy_enough_that_aging_matters() -> None:
    """Without aging a quiet batch request would starve behind an interactive flood: it waits until it climbs
    to the flood's level (two 10 s steps), where fair share puts it first."""
    results = simulate(2, 1.0, 30.0, "interactive", [Quiet("q0", [("batch", 1.0)])])
    assert results == [("batch", 20.0, 30.0)]


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int, str]]:
    return draw(
        st.lists(
            st.tuples(st.sampled_from(["admit", "cancel", "finish"]), st.integers(0, 30), st.sampled_from(CLASSES)),
            max_size=120,
        )
    )


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), operations())
def test_capacity_is_never_exceeded_and_no_request_is_lost(capacity: int, ops: list[tuple[str, int, str]]) -> None:
    policy = Policy.from_config(SchedulingConfig(aging_seconds=9))
    book = SlotBook("d", capacity, policy)
    now = 0.0
    waiting: set[str] = set()
    running: set[str] = set()
    for n, (op, who, cls) in enumerate(ops):
        now += 0.5
        tid = f"r{n}"
        if op == "admit":
            outcome = book.admit(Ticket(tid, f"t{who % 3}", policy.rule(cls), now, 0), now).outcome
            (running if outcome is Outcome.GRANTED else waiting).add(tid)
        elif op == "cancel" and waiting:
            victim = sorted(waiting)[who % len(waiting)]
            assert book.cancel(victim)
            waiting.discard(victim)
        elif op == "finish" and running:
            done = sorted(running)[who % len(running)]
            assert book.finish(done, float(who), now)
            running.discard(done)
        for ticket in book.grant(now):
            waiting.discard(ticket.id)
            running.add(ticket.id)
        assert len(book.running) <= capacity
        assert set(book.running) == running and set(book.waiting) == waiting
        assert sum(book.depth) == len(waiting) == sum(book.lines.values())
        assert not waiting or len(running) == capacity  # nobody waits while a slot is free
