"""The limit store interface, the reservation it works on, and the sliding-window arithmetic both stores share.

Admission reserves a request's worst case against every scope at once, all or nothing: one request in the
request window, its token estimate in the token window, one concurrency slot, and its worst-case cost against
the budget. Settlement replaces the estimates with what the call really used and releases the rest. Windows are
60 seconds long with one-second buckets, so "60 requests per minute" means at most 60 in any 60-second span
(to the second).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sluice.limits.policy import Scope

WINDOW_SECONDS = 60

LimitName = Literal["rpm", "tpm", "concurrent", "budget"]


@dataclass(slots=True)
class Reservation:
    id: str  # unique per call (the usage record id), never the client-supplied request id
    scopes: list[Scope]
    tokens: int  # the token estimate reserved in each scope's token window
    cost_nanos: int  # the worst-case cost reserved against each budget
    at: float  # epoch seconds at admission
    lease: float  # seconds after which an unsettled reservation counts as abandoned (crash recovery)
    period_keys: dict[str, str] = field(default_factory=dict)  # scope name → budget period at admission
    settled: bool = False
    fallback: bool = False  # admitted by the per-replica fallback store while the shared store was down
    renew_until: float = 0.0  # epoch seconds: renewed while the call runs, never past its longest possible end


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one finished call really used, for a reservation whose settlement must wait (the store was down)."""

    reservation: Reservation
    tokens: int
    cost_nanos: int
    now: float  # epoch seconds when the call ended; its usage record was committed just before


class StoreUnavailable(Exception):
    """The shared limit store (Redis) cannot be reached."""


class SpendUnavailable(Exception):
    """A budget period's spend could not be read from the usage records (the database is unreachable)."""


@dataclass(frozen=True, slots=True)
class Denial:
    scope: Scope
    limit: LimitName
    allowed: int
    retry_after: float  # seconds


@dataclass(frozen=True, slots=True)
class Quota:
    """Headroom left in the tightest scope for one kind of limit, for the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset: float  # seconds until the window is empty again


@dataclass(frozen=True, slots=True)
class Admitted:
    requests: Quota | None = None
    tokens: Quota | None = None


class LimitStore(Protocol):
    async def reserve(self, reservation: Reservation, now: float) -> Admitted | Denial: ...

    async def settle(self, reservation: Reservation, tokens: int, cost_nanos: int, now: float) -> None:
        """Replace the reservation's estimates with the actual tokens and cost (idempotent)."""

    async def settle_many(self, settlements: list[Settlement]) -> None:
        """Apply settlements that could not be applied when their calls ended (idempotent, in any order)."""

    async def spent(self, scope: Scope, now: float) -> int:
        """Money settled in the scope's current budget period, in nanos.

        Raises :class:`SpendUnavailable` when the period's spend must be loaded and the records are unreachable.
        """

    async def heartbeat(self, now: float, ttl: float) -> int:
        """Say this replica is live for ``ttl`` seconds; how many replicas share the store (1: in-process)."""

    async def renew(self, reservations: list[Reservation], now: float) -> None:
        """Extend the leases of reservations whose calls still run (a store without leases does nothing)."""

    async def close(self) -> None: ...


class Window:
    """A 60-second sliding sum with one-second buckets (the in-process store's request and token windows)."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def prune(self, second: int) -> None:
        horizon = second - WINDOW_SECONDS
        buckets = self.buckets
        while buckets and buckets[0][0] <= horizon:
            self.total -= buckets.popleft()[1]

    def add(self, second: int, amount: int) -> None:
        buckets = self.buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += amount
        else:
            buckets.append([second, amount])
        self.total += amount

    def adjust(self, second: int, delta: int) -> None:
        """Correct an earlier entry (an estimate settled to the actual); nothing if it has left the window."""
        for bucket in reversed(self.buckets):
            if bucket[0] == second:
                bucket[1] += delta
                self.total += delta
                return
            if bucket[0] < second:
                return

    def wait_for(self, second: int, need: int, limit: int) -> float:
        """Seconds until ``need`` more fits under ``limit`` as old buckets leave the window."""
        excess = self.total + need - limit
        for bucket_second, amount in self.buckets:
            excess -= amount
            if excess <= 0:
                return float(bucket_second + WINDOW_SECONDS - second)
        return float(WINDOW_SECONDS)

    def reset_in(self, second: int) -> float:
        return float(self.buckets[-1][0] + WINDOW_SECONDS - second) if self.buckets else 0.0
