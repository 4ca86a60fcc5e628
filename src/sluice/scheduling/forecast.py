"""Where a waiting request really stands: the order the line would be granted in, simulated grant by grant.

Counting the tickets whose sort key is smaller *right now* (``ordering.position``) misleads under fair share: a
light tenant returning to a flooded queue starts at the flooder's counter, ties with it, and is counted behind
every one of the flooder's waiting requests (told 44th-47th), yet it goes at the next free slot, because the
flooder's counter grows with each grant it gets. The forecast plays the grants forward instead: it takes the
best line head, charges its tenant what that request is expected to cost (its upfront charge, at least one
token: a grant always moves a counter), marks its line served, and repeats. Each grant follows a release — of
the running requests first, oldest first, then of the requests the forecast granted, in turn (as if all held
their slots equally long) — which settles at least a token more on the releasing tenant. Time is frozen at
``now``: aging still to come and requests still to arrive are not foreseen, so a place can only improve as the
request waits, unless a higher class or a lighter tenant arrives behind it.

Only line heads compete (the oldest of a line always goes first within it), so a heap of heads keyed by
``Ticket.key`` gives the order in O(n log lines); a tenant's keys change when its counter does, so its heads are
re-keyed on each of its grants (stale heap entries are skipped by version).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Iterable, Iterator

from sluice.scheduling.ordering import Line, SortKey, Standing, Ticket, class_left

MIN_CHARGE = 1.0  # what a grant adds to a counter at least, in the forecast


def forecast(
    tickets: Iterable[Ticket],
    now: float,
    standing: Standing,
    wanted: Collection[str] | None = None,
    running: Iterable[str] = (),
) -> dict[str, int]:
    """Ticket id -> its forecast place in line (1 = next), for ``wanted`` ids (all when None).

    ``running`` lists the tenants of the running requests, oldest first: each grant follows one release (theirs
    first, then the forecast's own grants in turn), which settles at least a token more on that tenant. The
    simulation stops as soon as every wanted ticket has its place.
    """
    simulation = _Simulation(tickets, now, standing, running)
    left = None if wanted is None else set(wanted)
    places: dict[str, int] = {}
    for place, ticket in enumerate(simulation.grants(), start=1):
        if left is None:
            places[ticket.id] = place
        elif ticket.id in left:
            places[ticket.id] = place
            left.discard(ticket.id)
            if not left:
                break
    return places


class _Simulation:
    def __init__(self, tickets: Iterable[Ticket], now: float, standing: Standing, running: Iterable[str]) -> None:
        self.now = now
        self.releases = deque(running)
        self.lines: dict[Line, list[Ticket]] = {}
        for ticket in tickets:
            self.lines.setdefault(ticket.line, []).append(ticket)
        for queue in self.lines.values():
            queue.sort(key=lambda t: (t.enqueued, t.seq), reverse=True)  # the head is last: pop() is O(1)
        self.standing = Standing(
            dict(standing.counters), dict(standing.served), standing.headroom, dict(standing.climbing)
        )
        self.by_tenant: dict[str, list[Line]] = {}
        self.by_rank: dict[int, list[Line]] = {}
        self.depth = [0] * (1 + max((line[1] for line in self.lines), default=0))
        for line, queue in self.lines.items():
            self.by_tenant.setdefault(line[0], []).append(line)
            self.by_rank.setdefault(line[1], []).append(line)
            self.depth[line[1]] += len(queue)
        self.versions: dict[Line, int] = dict.fromkeys(self.lines, 0)
        self.heap: list[tuple[SortKey, int, Line]] = [
            (queue[-1].key(now, self.standing), 0, line) for line, queue in self.lines.items()
        ]
        heapq.heapify(self.heap)

    def grants(self) -> Iterator[Ticket]:
        """The waiting tickets in the order they would be granted."""
        while True:
            if self.releases:  # a slot frees first: its tenant is settled a little more
                self._charge(self.releases.popleft(), MIN_CHARGE)
            line = self._best()
            if line is None:
                return
            queue = self.lines[line]
            ticket = queue.pop()
            yield ticket
            self._granted(ticket, line, bool(queue))

    def _best(self) -> Line | None:
        while self.heap:
            _, version, line = heapq.heappop(self.heap)
            if version == self.versions[line]:
                return line
            # else: re-keyed since; a newer entry for the line is in the heap
        return None

    def _granted(self, ticket: Ticket, line: Line, more: bool) -> None:
        if more:
            self.standing.served[line] = self.now
        else:
            self.standing.served.pop(line, None)
        rank = line[1]
        climbing = self.standing.climbing.get(rank)
        self.depth[rank] -= 1
        class_left(self.standing, self.depth, rank, self.now)
        if self.standing.climbing.get(rank) != climbing:
            self._rekey(self.by_rank[rank])  # the class's clock moved: all its heads' levels may have
        self._charge(ticket.tenant, max(ticket.upfront, MIN_CHARGE))
        self.releases.append(ticket.tenant)  # it runs now; its own release frees a later slot

    def _charge(self, tenant: str, amount: float) -> None:
        counters = self.standing.counters
        counters[tenant] = counters.get(tenant, 0.0) + amount
        self._rekey(self.by_tenant.get(tenant, ()))  # its counter moved: its heads' keys may have

    def _rekey(self, lines: Iterable[Line]) -> None:
        for other in lines:
            queue = self.lines[other]
            if queue:
                self.versions[other] += 1
                heapq.heappush(self.heap, (queue[-1].key(self.now, self.standing), self.versions[other], other))
