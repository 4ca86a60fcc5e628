"""Queue ordering without I/O: classes and their aging steps, the aged level, VTC fair share and its idle rule."""

from __future__ import annotations

import pytest

from sluice.config import PriorityClass, SchedulingConfig
from sluice.scheduling.book import Outcome, SlotBook
from sluice.scheduling.ordering import AGED, FairShare, Policy, Standing, Ticket, choose, position, retry_after

POLICY = Policy.from_config(SchedulingConfig(aging_seconds=30))  # interactive / standard / batch, 10 s steps
INTERACTIVE, STANDARD, BATCH = (POLICY.rule(n) for n in ("interactive", "standard", "batch"))
seq = iter(range(1, 10**9))


def ticket(tenant: str, rule: object = STANDARD, at: float = 0.0, tid: str | None = None) -> Ticket:
    n = next(seq)
    assert rule in POLICY.classes
    return Ticket(tid or f"t{n}", tenant, rule, at, n)  # type: ignore[arg-type]


# --- classes and aging steps ------------------------------------------------------------------------------------


def test_classes_rank_by_weight_and_climb_one_level_per_step() -> None:
    assert [r.name for r in POLICY.classes] == ["interactive", "standard", "batch"]
    assert (INTERACTIVE.climb, STANDARD.climb, BATCH.climb) == ((10.0,), (10.0, 20.0), (10.0, 20.0, 30.0))
    assert [BATCH.level(w, headroom=0) for w in (0, 9.9, 10, 19.9, 20, 29.9, 30)] == [2, 2, 1, 1, 0, 0, AGED]
    assert [INTERACTIVE.level(w, headroom=0) for w in (0, 9.9, 10)] == [0, 0, AGED]


def test_per_class_steps_and_unknown_priorities() -> None:
    policy = Policy.from_config(
        SchedulingConfig(
            classes=[
                PriorityClass(name="low", weight=1, age_after=60),
                PriorityClass(name="high", weight=9, age_after=5),
            ],
            default_class="low",
        )
    )
    assert policy.rule("high").climb == (5.0,)
    assert policy.rule("low").climb == (60.0, 65.0)  # its own step first, then each level above
    assert policy.rule("no-such-class") is policy.rule(None) is policy.rule("low")


def test_headroom_makes_a_line_aged_early_but_never_before_half_its_bound() -> None:
    assert BATCH.level(26.0, headroom=4.0) == AGED
    assert BATCH.level(25.9, headroom=4.0) == 0
    assert BATCH.aged_after(headroom=100.0) == 15.0


def test_a_higher_class_goes_first_whatever_the_counters() -> None:
    standing = Standing({"heavy": 1e9, "light": 0.0})
    low, high = ticket("light", BATCH, at=0.0), ticket("heavy", INTERACTIVE, at=5.0)
    assert choose([low, high], now=5.0, standing=standing) is high


def test_a_waiting_batch_request_climbs_past_fresh_standard_ones() -> None:
    standing = Standing({"a": 100.0, "b": 0.0})
    old_batch = ticket("a", BATCH, at=0.0)
    fresh = ticket("b", STANDARD, at=15.0)
    assert old_batch.key(9.0, standing)[0] == BATCH.rank  # below standard until its first step
    assert choose([old_batch, fresh], now=15.0, standing=standing) is fresh  # both at level 1: b has less service
    assert choose([old_batch, fresh], now=20.0, standing=standing) is old_batch  # level 0 beats level 1


def test_an_aged_request_goes_ahead_of_a_fresh_interactive_one_from_a_lighter_tenant() -> None:
    standing = Standing({"heavy": 5000.0, "light": 0.0})
    aged = ticket("heavy", BATCH, at=0.0)
    fresh = ticket("light", INTERACTIVE, at=29.0)
    assert aged.key(29.0, standing)[0] == 0 and choose([aged, fresh], 29.0, standing) is fresh
    assert aged.key(30.0, standing)[0] == AGED and choose([aged, fresh], 30.0, standing) is aged


def test_aged_requests_go_earliest_deadline_first() -> None:
    batch = ticket("a", BATCH, at=0.0)  # bound 30: due at 30
    interactive = ticket("b", INTERACTIVE, at=15.0)  # bound 10: due at 25
    standing = Standing()
    assert batch.key(31.0, standing)[0] == interactive.key(31.0, standing)[0] == AGED
    assert choose([batch, interactive], 31.0, standing) is interactive


# --- lines: a tenant's own backlog does not age past other tenants ----------------------------------------------


def test_a_served_line_restarts_its_aging_clock() -> None:
    standing = Standing({"flood": 0.0})
    backlog = ticket("flood", STANDARD, at=0.0)
    assert backlog.key(25.0, standing)[0] == AGED
    standing.served[backlog.line] = 24.0  # the flooding tenant's line was served a second ago ...
    assert backlog.key(25.0, standing)[0] == 0  # ... so it is not aged; its class has climbed to the top
    standing.climbing[STANDARD.rank] = 24.0  # the class was served then with nothing above it waiting
    assert backlog.key(25.0, standing)[0] == STANDARD.rank


def test_every_request_of_a_class_is_at_its_class_level_whatever_its_own_wait() -> None:
    standing = Standing({"flood": 1e6, "light": 0.0}, climbing={BATCH.rank: 0.0})
    old, fresh = ticket("flood", BATCH, at=0.0), ticket("light", BATCH, at=24.0)
    assert old.key(25.0, standing)[0] == fresh.key(25.0, standing)[0] == 0  # the class climbed; both with it
    assert choose([old, fresh], 25.0, standing) is fresh  # and fair share orders them


def test_within_a_line_the_oldest_goes_first() -> None:
    first, second = ticket("a", at=1.0), ticket("a", at=2.0)
    assert choose([second, first], 3.0, Standing()) is first


# --- fair share by tenant ----------------------------------------------------------------------------------------


def test_within_a_level_the_tenant_with_least_service_goes_first() -> None:
    standing = Standing({"a": 900.0, "b": 100.0})
    a, b = ticket("a", at=0.0), ticket("b", at=5.0)
    assert choose([a, b], 6.0, standing) is b
    assert position(a, [a, b], 6.0, standing) == 2 and position(b, [a, b], 6.0, standing) == 1


def test_a_tenant_returning_from_idle_starts_at_the_smallest_active_counter() -> None:
    fair = FairShare()
    fair.join("a")
    fair.join("b")
    fair.leave("a", 1000.0)  # a goes idle having been served 1000
    fair.leave("b", 5000.0)  # b goes idle too: nobody is active, nothing to be fair between
    assert fair.counters == {}
    fair.join("c")
    fair.join("c")
    fair.leave("c", 300.0)  # c is still active (one request left), served 300
    fair.join("d")  # d was never served: it does not bank the time it was away (one token below: ahead on ties)
    assert fair.counters["d"] == 299.0


def test_an_idle_tenant_cannot_bank_service_but_keeps_a_larger_counter() -> None:
    fair = FairShare()
    fair.join("busy")
    fair.join("idle")
    fair.leave("idle", 9000.0)  # idle leaves having been served a lot
    for _ in range(3):
        fair.join("busy")
        fair.leave("busy", 1000.0)  # busy goes on being served while idle is away
    assert fair.counters["busy"] == 3000.0
    fair.join("idle")
    assert fair.counters["idle"] == 9000.0  # it had more than the floor: its own counter stays
    fair.leave("idle", 0.0)
    fair.join("newcomer")
    assert fair.counters["newcomer"] == 2999.0


def test_a_pruned_tenant_returns_exactly_as_if_it_had_been_kept() -> None:
    fair = FairShare()
    fair.join("a")
    fair.join("a")
    fair.leave("a", 50.0)  # a stays active at 50
    fair.join("b")
    assert fair.counters["b"] == 49.0  # the floor less RETURN_EDGE
    fair.leave("b", 0.0)  # b leaves where it was lifted to: forgotten, it would be lifted there again anyway
    assert "b" not in fair.counters
    fair.join("b")
    assert fair.counters["b"] == 49.0


# --- the book: capacity, queue limits, positions -----------------------------------------------------------------


def test_the_book_never_runs_more_than_its_capacity_and_grants_in_order() -> None:
    book = SlotBook("d", 2, POLICY)
    admissions = [book.admit(ticket(f"t{i}", STANDARD, at=float(i), tid=f"r{i}"), float(i)) for i in range(5)]
    assert [a.outcome for a in admissions] == [Outcome.GRANTED] * 2 + [Outcome.QUEUED] * 3
    assert [a.position for a in admissions] == [0, 0, 1, 2, 3]
    assert book.grant(5.0) == []  # no free slot
    assert book.finish("r0", 100.0, 6.0)
    assert [t.id for t in book.grant(6.0)] == ["r2"]
    assert len(book.running) == 2 and not book.finish("r0", 0.0, 7.0)


def test_a_full_class_is_refused_while_higher_classes_still_get_in() -> None:
    policy = Policy.from_config(
        SchedulingConfig(
            classes=[
                PriorityClass(name="interactive", weight=3, max_queue=5),
                PriorityClass(name="standard", weight=2),
                PriorityClass(name="batch", weight=1, max_queue=1),
            ]
        )
    )
    book = SlotBook("d", 1, policy)
    assert book.admit(ticket("x"), 0.0).outcome is Outcome.GRANTED
    batch, interactive = policy.rule("batch"), policy.rule("interactive")
    assert book.admit(Ticket("b1", "x", batch, 0.0, 0), 0.0).outcome is Outcome.QUEUED
    refused = book.admit(Ticket("b2", "x", batch, 0.0, 0), 0.0)
    assert refused.outcome is Outcome.FULL and refused.retry_after >= 1
    high = book.admit(Ticket("i1", "x", interactive, 0.0, 0), 0.0)
    assert high.outcome is Outcome.QUEUED and high.position == 1  # ahead of the waiting batch request


def test_a_tenant_is_refused_at_its_own_bound_before_the_class_is_full() -> None:
    policy = Policy.from_config(
        SchedulingConfig(classes=[PriorityClass(name="standard", weight=1, max_queue=10, max_queue_per_tenant=3)])
    )
    rule = policy.rule("standard")
    book = SlotBook("d", 1, policy)
    assert book.admit(Ticket("run", "x", rule, 0.0, 0), 0.0).outcome is Outcome.GRANTED
    outcomes = [book.admit(Ticket(f"f{n}", "flood", rule, 0.0, 0), 0.0) for n in range(4)]
    assert [a.outcome for a in outcomes] == [Outcome.QUEUED] * 3 + [Outcome.FULL]
    assert outcomes[-1].tenant_full and outcomes[-1].retry_after >= 1
    assert book.admit(Ticket("l1", "light", rule, 0.0, 0), 0.0).outcome is Outcome.QUEUED
    book.cancel("f0")  # the flooder's line shrinks: it may queue one more
    assert book.admit(Ticket("f4", "flood", rule, 0.0, 0), 0.0).outcome is Outcome.QUEUED


def test_the_per_tenant_bound_defaults_to_half_the_class_bound() -> None:
    assert PriorityClass(name="a", weight=1, max_queue=500).tenant_queue_bound == 250
    assert PriorityClass(name="a", weight=1, max_queue=1).tenant_queue_bound == 1
    assert PriorityClass(name="a", weight=1, max_queue=0).tenant_queue_bound == 1  # the class bound refuses first
    assert PriorityClass(name="a", weight=1).tenant_queue_bound is None
    assert PriorityClass(name="a", weight=1, max_queue_per_tenant=7).tenant_queue_bound == 7


def test_cancelling_a_waiting_request_frees_its_place_and_its_class_depth() -> None:
    book = SlotBook("d", 1, POLICY)
    book.admit(ticket("a", tid="run"), 0.0)
    book.admit(ticket("b", tid="wait"), 0.0)
    assert book.depth[STANDARD.rank] == 1 and book.cancel("wait") and book.depth[STANDARD.rank] == 0
    assert not book.cancel("wait") and book.finish("run", 0.0, 1.0) and book.grant(1.0) == []


def test_the_snapshot_reports_depth_in_flight_and_waits() -> None:
    book = SlotBook("d", 1, POLICY)
    book.admit(ticket("a", tid="run", at=0.0), 0.0)
    book.finish("run", 10.0, 2.0)  # one service of 2 s: the estimate's basis
    book.admit(ticket("a", tid="run2", at=2.0), 2.0)
    book.admit(ticket("b", BATCH, tid="w", at=3.0), 3.0)
    snap = book.snapshot(4.0)
    assert (snap["capacity"], snap["in_flight"], snap["waiting"]) == (1, 1, 1)
    assert snap["oldest_wait_ms"] == 1000.0 and snap["recent_service_ms"] == 2000.0
    assert snap["estimated_wait_ms"] > 0
    assert [c["waiting"] for c in snap["classes"]] == [0, 0, 1]
    assert {t["tenant"] for t in snap["tenants"]} == {"a", "b"}
    assert [t["tenant"] for t in book.snapshot(4.0, tenant="b")["tenants"]] == ["b"]


@pytest.mark.parametrize(
    ("place", "capacity", "service", "expected"), [(1, 2, 4.0, 2), (5, 2, 4.0, 10), (1, 1, 0.0, 1)]
)
def test_retry_after_is_the_estimated_wait_in_whole_seconds(
    place: int, capacity: int, service: float, expected: int
) -> None:
    assert retry_after(place, capacity, service) == expected
