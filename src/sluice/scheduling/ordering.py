"""Which waiting request goes next: priority classes, aging, and fair share by tenant. Pure logic, no I/O.

Requests wait in *lines*, one per (tenant, priority class); within a line the oldest goes first. Which line's
head goes next is decided in three layers:

1. **Levels.** Each priority class is a level; a higher ``weight`` is a higher level (rank 0 is the top). A
   class's requests start at its level and move up one level each time the class has gone that level's
   ``age_after`` seconds held back (its clock starts with its first waiter and restarts at each of its grants
   made while nothing of a higher class waits), the way a ticket dead-letters from one class's queue into the
   next one up. All of a class's requests share its level.
2. **Aged.** Once a line has gone its class's *aging bound* unserved (the sum of the steps from its level to
   the top, less a headroom of one recent service time, so that the slot it then needs frees before the bound
   runs out) its head is *aged*: it goes ahead of everything that is not, and aged heads go in the order their
   bounds fall due (earliest deadline first).
3. **Fair share within a level.** Tenants are ordered by a virtual token counter (VTC, Sheng et al., "Fairness
   in Serving Large Language Models", OSDI 2024): each tenant's counter grows by the tokens it was served
   (input + ``output_token_weight`` x output, as the upstream reports them), and the tenant with the least goes
   first. A tenant that becomes active again starts at no less than the smallest counter among the tenants that
   are active (waiting or running), so service it did not ask for while idle cannot be banked and spent later
   in a burst.

Turning aged runs on the line's clock: its unserved time, from the later of its head's arrival and the line's
last grant. So a request that is alone in its line (the usual case for a well-behaved caller) never waits longer
than its class's bound while the upstream is serving, whoever floods it; a tenant's own backlog, on the other
hand, does not age past other tenants: a tenant being served its fair share is not starving, and aging its flood
by the flood's length would hand it back the priority that fair share took away. And since a class's requests
climb together, a burst held back by a higher class reaches the top level at once, while within a class only
fair share orders tenants.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from sluice.config import SchedulingConfig

AGED = -1  # the level above every class: requests that reached their aging bound

# A waiting request's place in the order (smaller goes first): level, then the tenant's counter (or, when
# aged, the time its bound fell due), then arrival time, then arrival sequence.
SortKey = tuple[int, float, float, int]

# A tenant returning from idle is lifted to one token below the smallest active counter: no more than the floor
# (nothing banked), yet ahead of the tenants already at the floor, whose waiting requests would otherwise go first
# on their earlier arrival and make every returning light tenant wait one extra grant.
RETURN_EDGE = 1.0

RECENT_SERVICES = 32  # service times remembered per deployment, for headroom and wait estimates


@dataclass(frozen=True, slots=True)
class ClassRule:
    """One priority class as the ordering uses it."""

    name: str
    rank: int  # 0 is the highest class
    climb: tuple[float, ...]  # seconds of waiting at which the request reaches rank-1, ..., 0, then AGED
    max_wait: float | None = None
    max_queue: int | None = None  # waiting requests of the class on a deployment, all tenants together
    max_queue_per_tenant: int | None = None  # ... of one tenant (its line)

    @property
    def bound(self) -> float:
        """The aging bound: the wait after which nothing that has not waited as long overtakes it."""
        return self.climb[-1]

    def aged_after(self, headroom: float) -> float:
        """When the request becomes aged: its bound less the headroom, but never before half the bound."""
        return max(self.bound - headroom, self.bound / 2)

    def level(self, waited: float, headroom: float) -> int:
        """The level a request of this class is at after waiting ``waited`` seconds."""
        if waited >= self.aged_after(headroom):
            return AGED
        return self.climbed(waited)

    def climbed(self, waited: float) -> int:
        """The class level reached after ``waited`` seconds of climbing, one step at a time, at most the top (0)."""
        level = self.rank
        for threshold in self.climb[:-1]:
            if waited < threshold:
                break
            level -= 1
        return level


@dataclass(frozen=True)
class Policy:
    """The classes and charging rule of one gateway, from ``scheduling`` in the settings."""

    classes: tuple[ClassRule, ...]  # by rank
    default: ClassRule
    output_weight: float = 2.0
    by_name: dict[str, ClassRule] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: SchedulingConfig) -> Policy:
        ordered = sorted(config.classes, key=lambda c: -c.weight)
        steps = [c.age_after or config.aging_seconds / len(ordered) for c in ordered]
        rules = []
        for rank, cfg in enumerate(ordered):
            climb, total = [], 0.0
            for level in range(rank, -1, -1):
                total += steps[level]
                climb.append(total)
            rules.append(ClassRule(cfg.name, rank, tuple(climb), cfg.max_wait, cfg.max_queue, cfg.tenant_queue_bound))
        by_name = {r.name: r for r in rules}
        return cls(tuple(rules), by_name[config.default_class], config.output_token_weight, by_name)

    def rule(self, name: str | None) -> ClassRule:
        """The class a principal's ``priority`` names; unknown names get the default class."""
        if name is None:
            return self.default
        return self.by_name.get(name, self.default)

    def charge(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens + self.output_weight * completion_tokens


Line = tuple[str, int]  # (tenant, class rank)


@dataclass(slots=True)
class Standing:
    """What the order depends on besides the tickets: counters, when each line was last served, headroom."""

    counters: dict[str, float] = field(default_factory=dict)  # tenant -> virtual token counter
    served: dict[Line, float] = field(default_factory=dict)  # line -> last grant, while the line has waiters
    headroom: float = 0.0  # how early a line turns aged: the longest recent service, so its slot frees in time
    # class rank -> when the class started climbing: its first waiter's arrival, or its last grant made while no
    # request of a higher class waited (the class was not being held back then). While it has waiters only.
    climbing: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class Ticket:
    """A request waiting for a slot on one deployment."""

    id: str
    tenant: str
    rule: ClassRule
    enqueued: float  # seconds, on the clock the queue runs on
    seq: int  # arrival order, for ties
    owner: str = ""  # who is waiting (the principal), for "my waiting requests"
    note: str = ""  # free text shown to the owner (the model asked for)
    upfront: float = 0.0  # charged to the tenant's counter when granted (the prompt); the rest on release

    @property
    def line(self) -> Line:
        return (self.tenant, self.rule.rank)

    def key(self, now: float, standing: Standing) -> SortKey:
        # Aged: on the line's clock (the later of the request's arrival and the line's last grant).
        since = max(self.enqueued, standing.served.get(self.line, self.enqueued))
        aged_after = self.rule.aged_after(standing.headroom)
        if now - since >= aged_after:
            return (AGED, since + aged_after, self.enqueued, self.seq)
        # The class levels: on the class's clock, the same for every request of the class, so that within a class
        # only fair share orders tenants, and a whole burst held back by higher classes climbs at once.
        climbing = standing.climbing.get(self.rule.rank, self.enqueued)
        return (self.rule.climbed(now - climbing), standing.counters.get(self.tenant, 0.0), self.enqueued, self.seq)


def class_joined(standing: Standing, depth: list[int], rank: int, now: float) -> None:
    """A request of class ``rank`` starts waiting (``depth``: waiting per class, before it is counted)."""
    if depth[rank] == 0:
        standing.climbing[rank] = now


def class_left(standing: Standing, depth: list[int], rank: int, now: float | None) -> None:
    """A request of class ``rank`` left the line (``depth`` already counts it out), granted at ``now`` or not."""
    if depth[rank] == 0:
        standing.climbing.pop(rank, None)
    elif now is not None and not any(depth[:rank]):
        standing.climbing[rank] = now  # served while nothing above it waited: not held back, no climbing


def choose(tickets: Iterable[Ticket], now: float, standing: Standing) -> Ticket | None:
    """The ticket that goes next, or None when none is waiting."""
    best: Ticket | None = None
    best_key: SortKey | None = None
    for ticket in tickets:
        key = ticket.key(now, standing)
        if best_key is None or key < best_key:
            best, best_key = ticket, key
    return best


def position(ticket: Ticket, tickets: Iterable[Ticket], now: float, standing: Standing) -> int:
    """1 + the number of waiting tickets ordered ahead of ``ticket`` right now."""
    mine = ticket.key(now, standing)
    return 1 + sum(1 for t in tickets if t is not ticket and t.key(now, standing) < mine)


class FairShare:
    """Virtual token counters per tenant, with the rule for tenants returning from idle."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = {}
        self.active: dict[str, int] = {}  # tenant -> requests waiting or running

    def charge(self, tenant: str, amount: float) -> None:
        """Add to an active tenant's counter now (a request's upfront charge, as it is granted)."""
        if amount:
            self.counters[tenant] = self.counters.get(tenant, 0.0) + amount

    def join(self, tenant: str) -> None:
        """A request of ``tenant`` starts waiting or running."""
        if tenant not in self.active:
            floor = min((self.counters.get(t, 0.0) for t in self.active), default=None)
            if floor is not None and self.counters.get(tenant, 0.0) < floor - RETURN_EDGE:
                self.counters[tenant] = floor - RETURN_EDGE
            self.active[tenant] = 0
        self.active[tenant] += 1

    def leave(self, tenant: str, charge: float) -> None:
        """A request of ``tenant`` is done (served ``charge`` weighted tokens) or left the queue (0)."""
        self.counters[tenant] = self.counters.get(tenant, 0.0) + charge
        left = self.active.get(tenant, 0) - 1
        if left > 0:
            self.active[tenant] = left
            return
        self.active.pop(tenant, None)
        if not self.active:
            self.counters.clear()  # nobody is active: nothing left to be fair between
            return
        floor = min(self.counters.get(t, 0.0) for t in self.active)
        if self.counters[tenant] <= floor - RETURN_EDGE:
            del self.counters[tenant]  # it would be lifted to at least that on return anyway


class RecentService:
    """How long recent requests held a slot: the aging headroom and the basis of wait estimates."""

    def __init__(self, size: int = RECENT_SERVICES) -> None:
        self.times: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.times.append(max(0.0, seconds))

    @property
    def mean(self) -> float:
        return sum(self.times) / len(self.times) if self.times else 0.0

    @property
    def longest(self) -> float:
        return max(self.times, default=0.0)


def estimated_wait(place: int, capacity: int, mean_service: float) -> float:
    """Seconds until the request at ``place`` in line (1 = next) is likely to start."""
    if place <= 0:
        return 0.0
    return math.ceil(place / capacity) * mean_service - mean_service / 2 if mean_service else 0.0


def retry_after(place: int, capacity: int, mean_service: float) -> int:
    """Whole seconds for a ``Retry-After`` header: the estimated wait, at least one second."""
    return max(1, math.ceil(estimated_wait(place, capacity, mean_service)))
