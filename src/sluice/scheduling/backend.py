"""The interface every scheduler backend implements, and the slot a granted request holds.

A backend keeps, for each deployment with a capacity, how many requests run and who waits, and decides who goes
next (:mod:`sluice.scheduling.ordering`). Three implement it: in-process (:mod:`.local`), Redis (:mod:`.redis`,
shared by replicas) and RabbitMQ (:mod:`.rabbitmq`, shared by replicas); one behavioural test suite runs
against all three.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.canonical import Usage
from sluice.errors import QueueFull, QueueTimeout
from sluice.scheduling.ordering import ClassRule


@dataclass(frozen=True, slots=True)
class Request:
    """What a request asking for a slot says about itself."""

    deployment: str
    capacity: int
    tenant: str  # the unit of fair share
    rule: ClassRule  # its priority class
    owner: str = ""  # the principal, so it can list its own waiting requests
    note: str = ""  # the public model name, shown in that list
    alive: Callable[[], bool] | None = None  # False once its client is known to have gone (checked at grant)
    upfront: float = 0.0  # fair-share charge known before the call (its prompt tokens): charged at the grant


class WaiterLeft(Exception):
    """A waiter's client had gone when its slot came: the slot went on to the next in line."""


def still_wanted(request: Request) -> bool:
    return request.alive is None or request.alive()


class OutputRate:
    """Weighted output tokens per second that a deployment's calls generate while holding a slot (this process's
    moving average, from calls that reported usage), to charge a call that ends without usage for the time it held
    the upstream."""

    __slots__ = ("per_second",)

    SMOOTHING = 0.2
    MIN_SECONDS = 0.05  # shorter holds say little about the rate

    def __init__(self) -> None:
        self.per_second = 0.0

    def learn(self, weighted_output: float, seconds: float) -> None:
        if seconds < self.MIN_SECONDS or weighted_output <= 0:
            return
        rate = weighted_output / seconds
        self.per_second = rate if not self.per_second else self.per_second + self.SMOOTHING * (rate - self.per_second)

    def estimate(self, seconds: float) -> float:
        return self.per_second * max(0.0, seconds)


class Slot:
    """A granted place on a deployment; :meth:`release` gives it back (once) and settles the tokens served.

    The request's ``upfront`` charge (its prompt, estimated) was added to its tenant's counter when the slot was
    granted; the release adds the rest: the served tokens as the upstream reported them, less what was charged
    up front. A call that ends with no usage at all (a non-streamed call abandoned by its client) is settled at
    its prompt plus the output the deployment generates in the time it held the slot (``meter``): what it
    consumed.
    """

    __slots__ = ("_give_back", "granted_at", "meter", "output_weight", "position", "prompt", "upfront", "waited")

    def __init__(
        self,
        give_back: Callable[[float], None] | None,
        position: int = 0,
        waited: float = 0.0,
        weight: float = 1.0,
        upfront: float = 0.0,
    ) -> None:
        self._give_back = give_back
        self.position = position  # place in line at enqueue; 0 when it ran at once
        self.waited = waited  # seconds spent waiting
        self.output_weight = weight
        self.upfront = upfront
        self.meter: OutputRate | None = None  # set by the Scheduler
        self.granted_at = 0.0  # time.monotonic() when the Scheduler handed the slot out
        self.prompt = upfront  # what of the upfront charge was the prompt (all of it, as the Scheduler charges)

    def release(self, usage: Usage | None = None) -> None:
        give_back = self._give_back
        if give_back is None:
            return
        self._give_back = None
        meter = self.meter
        held = time.monotonic() - self.granted_at if meter is not None else 0.0
        if usage is None:
            consumed = self.prompt + (meter.estimate(held) if meter is not None else 0.0)
            give_back(consumed - self.upfront)
            return
        output = self.output_weight * usage.completion_tokens
        if meter is not None and not usage.estimated:
            meter.learn(output, held)
        give_back(usage.prompt_tokens + output - self.upfront)

    @property
    def held(self) -> bool:
        return self._give_back is not None


UNLIMITED = Slot(None)  # deployments without a capacity: nothing to wait for, nothing to give back


class SchedulerBackend(Protocol):
    """Capacity and waiting lines of every deployment, in one process or shared by replicas."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def acquire(self, request: Request, output_weight: float) -> Slot:
        """A slot on the request's deployment, waiting in line if need be.

        Raises :class:`~sluice.errors.QueueFull` when the class's line is full and
        :class:`~sluice.errors.QueueTimeout` after the class's max wait. Cancelling the caller while it waits
        takes it out of line at once; a slot granted to a caller that was cancelled meanwhile is given back, and
        so is one granted to a waiter whose ``request.alive()`` says its client has gone (:class:`WaiterLeft`).
        """
        ...

    async def snapshot(self, tenant: str | None = None, known: Collection[str] = ()) -> list[dict[str, Any]]:
        """Per deployment: capacity, in flight, waiting per class, oldest wait, estimated wait.

        ``known``: the ids of the deployments with a capacity in this replica's catalog; a backend that learns of
        deployments only by serving them (RabbitMQ) looks these up too, so every replica answers for all of them.
        """
        ...

    async def waiting_of(self, owner: str, known: Collection[str] = ()) -> list[dict[str, Any]]:
        """The requests ``owner`` has waiting, with their current place in line (``known`` as for snapshot)."""
        ...

    def local_depths(self) -> dict[tuple[str, str], int]:
        """Requests waiting in this process, by (deployment, class), for the queue depth gauge."""
        ...


def queue_full(request: Request, retry_after: int, tenant_full: bool = False) -> QueueFull:
    rule = request.rule
    if tenant_full:
        return QueueFull(
            f"Your tenant already has its limit of {rule.max_queue_per_tenant} '{rule.name}' requests waiting for "
            f"deployment '{request.deployment}'. Retry after {retry_after} s.",
            code="queue_full",
            headers={"Retry-After": str(retry_after)},
        )
    return QueueFull(
        f"The queue for deployment '{request.deployment}' holds its limit of {rule.max_queue} waiting "
        f"'{rule.name}' requests. Retry after {retry_after} s.",
        code="queue_full",
        headers={"Retry-After": str(retry_after)},
    )


def queue_timeout(request: Request, retry_after: int) -> QueueTimeout:
    rule = request.rule
    return QueueTimeout(
        f"No slot on deployment '{request.deployment}' became free within the {rule.max_wait:g} s a "
        f"'{rule.name}' request may wait. Retry after {retry_after} s.",
        code="queue_timeout",
        headers={"Retry-After": str(retry_after)},
    )
