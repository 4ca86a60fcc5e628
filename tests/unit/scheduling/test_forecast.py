"""The forecast grant order: the places and waits callers are told match the order the book then grants in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.config import SchedulingConfig
from sluice.scheduling.book import SlotBook
from sluice.scheduling.forecast import forecast
from sluice.scheduling.ordering import Policy, Standing, Ticket, position

POLICY = Policy.from_config(SchedulingConfig(aging_seconds=3000))  # no aging within these tests
STANDARD = POLICY.rule("standard")


def test_a_light_tenant_behind_a_flood_is_told_the_place_it_gets() -> None:
    book = SlotBook("d", 2, POLICY)
    book.admit(Ticket("run1", "flood", STANDARD, 0.0, 0, upfront=100.0), 0.0)
    book.admit(Ticket("run2", "light", STANDARD, 0.0, 0, upfront=100.0), 0.0)  # light: 99 + 100, flood: 100
    for n in range(40):
        book.admit(Ticket(f"f{n}", "flood", STANDARD, 0.1, 0, upfront=100.0), 0.1)
    light = Ticket("light", "light", STANDARD, 1.0, 0, upfront=100.0)
    admission = book.admit(light, 1.0)
    # By the sort keys of the moment, light (199) is behind all 40 of the flooder's (100).
    assert position(light, book.waiting.values(), 1.0, book.standing) == 41
    assert admission.position == 2  # the forecast: the flooder's counter grows with its first grant
    book.finish("run1", 1.0, 2.0)
    assert [t.id for t in book.grant(2.0)] == ["f0"]
    book.finish("run2", 1.0, 3.0)
    assert [t.id for t in book.grant(3.0)] == ["light"]


def test_places_follow_fair_share_not_arrival() -> None:
    standing = Standing({"a": 0.0, "b": 0.0})
    tickets = [Ticket(f"a{n}", "a", STANDARD, 0.0, n, upfront=10.0) for n in range(3)]
    tickets += [Ticket(f"b{n}", "b", STANDARD, 1.0, 10 + n, upfront=10.0) for n in range(3)]
    places = forecast(tickets, 2.0, standing)
    assert sorted(places, key=places.__getitem__) == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert forecast(tickets, 2.0, standing, wanted=["b1"]) == {"b1": 4}


WAITERS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]), st.sampled_from(["interactive", "standard", "batch"]), st.integers(0, 5)
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(waiters=WAITERS, running=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3))
def test_the_forecast_is_the_grant_order_when_releases_settle_one_token(
    waiters: list[tuple[str, str, int]], running: list[str]
) -> None:
    book = SlotBook("d", len(running), POLICY)
    for n, tenant in enumerate(running):
        book.admit(Ticket(f"r{n}", tenant, STANDARD, 0.0, 0), 0.0)
    for n, (tenant, cls, upfront) in enumerate(waiters):
        ticket = Ticket(f"w{n}", tenant, POLICY.rule(cls), 1.0 + n, 0, upfront=1.0 + 100 * upfront)  # a prompt: >= 1
        book.admit(ticket, 1.0 + n)
    told = {ticket_id: book.place_of(ticket_id, 50.0) for ticket_id in book.waiting}
    granted: list[str] = []
    finishing = [f"r{n}" for n in range(len(running))]
    now = 50.0
    while book.waiting:
        book.finish(finishing.pop(0), 1.0, now)  # the forecast's assumption: a release settles one token more
        (ticket,) = book.grant(now)
        granted.append(ticket.id)
        finishing.append(ticket.id)
    assert sorted(told, key=told.__getitem__) == granted
    assert sorted(told.values()) == list(range(1, len(granted) + 1))
