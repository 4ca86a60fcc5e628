"""The slots and the waiting line of one deployment, as a state machine without I/O or clocks of its own.

The in-process backend drives one :class:`SlotBook` per deployment directly; the RabbitMQ dispatcher drives
the same class from the messages it receives, so both order requests identically. (The Redis backend runs the
same rules in Lua, next to its data; its tests hold it to this class's choices.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sluice.scheduling.forecast import forecast
from sluice.scheduling.ordering import (
    FairShare,
    Line,
    Policy,
    RecentService,
    Standing,
    Ticket,
    choose,
    class_joined,
    class_left,
    estimated_wait,
    retry_after,
)


class Outcome(enum.Enum):
    GRANTED = "granted"  # a slot was free: run now
    QUEUED = "queued"  # waiting; a later grant (or the class's max wait) ends it
    FULL = "full"  # the class's max queue (or the tenant's share of it) is reached on this deployment


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: Outcome
    position: int = 0  # place in line at enqueue (1 = next); 0 when granted at once
    retry_after: int = 0  # seconds, for FULL
    tenant_full: bool = False  # FULL because the tenant's own line is at its bound (others may still get in)


@dataclass(slots=True)
class Running:
    tenant: str
    started: float
    upfront: float = 0.0  # what its tenant was charged at the grant


class SlotBook:
    """Capacity, running requests and the waiting line of one deployment."""

    def __init__(self, deployment: str, capacity: int, policy: Policy) -> None:
        self.deployment = deployment
        self.capacity = capacity
        self.policy = policy
        self.running: dict[str, Running] = {}
        self.waiting: dict[str, Ticket] = {}
        self.depth = [0] * len(policy.classes)
        self.fair = FairShare()
        self.service = RecentService()
        self.standing = Standing(self.fair.counters)
        self.lines: dict[Line, int] = {}  # waiting requests per (tenant, class)
        self._seq = 0

    # --- the fast path ----------------------------------------------------------------------------------------

    def has_room(self) -> bool:
        """A slot is free and nobody waits for it: a new request runs at once."""
        return len(self.running) < self.capacity and not self.waiting

    def start(self, ticket_id: str, tenant: str, now: float, upfront: float = 0.0) -> None:
        self.fair.join(tenant)
        self.fair.charge(tenant, upfront)
        self.running[ticket_id] = Running(tenant, now, upfront)

    # --- waiting ------------------------------------------------------------------------------------------------

    def admit(self, ticket: Ticket, now: float, start: bool = True) -> Admission:
        """Run the request now if it can (and ``start``), else put it in line unless its class's line is full."""
        if start and self.has_room():
            self.start(ticket.id, ticket.tenant, now, ticket.upfront)
            return Admission(Outcome.GRANTED)
        rule = ticket.rule
        mine = self.lines.get(ticket.line, 0)
        if rule.max_queue_per_tenant is not None and mine >= rule.max_queue_per_tenant:
            # The tenant's own line is at its bound: it is refused, whoever else still gets in.
            return Admission(Outcome.FULL, retry_after=self.retry_after(self.depth[rule.rank] + 1), tenant_full=True)
        if rule.max_queue is not None and self.depth[rule.rank] >= rule.max_queue:
            return Admission(Outcome.FULL, retry_after=self.retry_after(self.depth[rule.rank] + 1))
        self._seq += 1
        ticket.seq = self._seq
        self.fair.join(ticket.tenant)
        self.waiting[ticket.id] = ticket
        class_joined(self.standing, self.depth, rule.rank, now)
        self.depth[rule.rank] += 1
        self.lines[ticket.line] = self.lines.get(ticket.line, 0) + 1
        return Admission(Outcome.QUEUED, self.place_of(ticket.id, now))

    def cancel(self, ticket_id: str) -> bool:
        """Take a waiting request out of line (its client left, or it waited too long)."""
        ticket = self.waiting.pop(ticket_id, None)
        if ticket is None:
            return False
        self.depth[ticket.rule.rank] -= 1
        class_left(self.standing, self.depth, ticket.rule.rank, None)
        self._left_line(ticket, None)
        self.fair.leave(ticket.tenant, 0.0)
        return True

    def _left_line(self, ticket: Ticket, granted_at: float | None) -> None:
        """Keep the line's count, and its last-served time while it still has waiters."""
        line = ticket.line
        left = self.lines[line] - 1
        if left:
            self.lines[line] = left
            if granted_at is not None:
                self.standing.served[line] = granted_at
        else:
            del self.lines[line]
            self.standing.served.pop(line, None)

    def finish(self, ticket_id: str, charge: float, now: float, refund: bool = False) -> bool:
        """A running request gave its slot back, having been served ``charge`` weighted tokens beyond its upfront
        charge; with ``refund`` (granted to a waiter that had left: nothing was served) the upfront comes back."""
        running = self.running.pop(ticket_id, None)
        if running is None:
            return False
        self.fair.leave(running.tenant, charge - running.upfront if refund else charge)
        self.service.add(now - running.started)
        self.standing.headroom = self.service.longest
        return True

    def grant(self, now: float) -> list[Ticket]:
        """Fill free slots from the line, best first; the returned tickets are now running."""
        granted: list[Ticket] = []
        while self.waiting and len(self.running) < self.capacity:
            ticket = choose(self.waiting.values(), now, self.standing)
            assert ticket is not None
            del self.waiting[ticket.id]
            self.depth[ticket.rule.rank] -= 1
            class_left(self.standing, self.depth, ticket.rule.rank, now)
            self._left_line(ticket, now)
            # The tenant stays active: it moves from waiting to running without leaving. Its counter takes the
            # upfront charge now, so the next choice (in this loop too) already sees it.
            self.fair.charge(ticket.tenant, ticket.upfront)
            self.running[ticket.id] = Running(ticket.tenant, now, ticket.upfront)
            granted.append(ticket)
        return granted

    # --- what callers are told ----------------------------------------------------------------------------------

    def estimated_wait(self) -> float:
        """Seconds a request arriving now would likely wait."""
        if self.has_room():
            return 0.0
        return estimated_wait(len(self.waiting) + 1, self.capacity, self.service.mean)

    def retry_after(self, place: int) -> int:
        return retry_after(place, self.capacity, self.service.mean)

    def place_of(self, ticket_id: str, now: float) -> int:
        """The waiting request's place in the forecast grant order (1 = next); 0 when it is not waiting."""
        if ticket_id not in self.waiting:
            return 0
        return self._forecast(now, [ticket_id]).get(ticket_id, 0)

    def _forecast(self, now: float, wanted: list[str]) -> dict[str, int]:
        running = [r.tenant for r in sorted(self.running.values(), key=lambda r: r.started)]
        return forecast(self.waiting.values(), now, self.standing, wanted, running)

    def waiting_of(self, owner: str, now: float) -> list[dict[str, Any]]:
        """The requests ``owner`` has waiting here, with their current place and estimated wait (forecast)."""
        mine = [ticket for ticket in self.waiting.values() if ticket.owner == owner]
        if not mine:
            return []
        places = self._forecast(now, [t.id for t in mine])
        out = []
        for ticket in sorted(mine, key=lambda t: places.get(t.id, 0)):
            place = places.get(ticket.id, 0)
            out.append(
                {
                    "deployment": self.deployment,
                    "model": ticket.note,
                    "priority": ticket.rule.name,
                    "position": place,
                    "waited_ms": round((now - ticket.enqueued) * 1000, 1),
                    "estimated_wait_ms": round(estimated_wait(place, self.capacity, self.service.mean) * 1000, 1),
                }
            )
        return out

    def snapshot(self, now: float, tenant: str | None = None) -> dict[str, Any]:
        """Depth per class, in flight, oldest wait and estimated wait (JSON-able)."""
        tickets = list(self.waiting.values())
        oldest = min((t.enqueued for t in tickets), default=None)
        classes = []
        for rule in self.policy.classes:
            mine = [t.enqueued for t in tickets if t.rule is rule]
            classes.append(
                {
                    "name": rule.name,
                    "waiting": self.depth[rule.rank],
                    "oldest_wait_ms": round((now - min(mine)) * 1000, 1) if mine else None,
                    "aging_bound_s": rule.bound,
                    "max_queue": rule.max_queue,
                    "max_queue_per_tenant": rule.max_queue_per_tenant,
                    "max_wait_s": rule.max_wait,
                }
            )
        tenants: dict[str, dict[str, Any]] = {}
        for ticket in tickets:
            tenants.setdefault(ticket.tenant, {"waiting": 0, "in_flight": 0})["waiting"] += 1
        for running in self.running.values():
            tenants.setdefault(running.tenant, {"waiting": 0, "in_flight": 0})["in_flight"] += 1
        return {
            "deployment": self.deployment,
            "capacity": self.capacity,
            "in_flight": len(self.running),
            "waiting": len(tickets),
            "oldest_wait_ms": round((now - oldest) * 1000, 1) if oldest is not None else None,
            "estimated_wait_ms": round(self.estimated_wait() * 1000, 1),
            "recent_service_ms": round(self.service.mean * 1000, 1),
            "classes": classes,
            "tenants": [
                {"tenant": name, **counts, "service": round(self.fair.counters.get(name, 0.0), 1)}
                for name, counts in sorted(tenants.items())
                if tenant is None or name == tenant
            ],
        }
