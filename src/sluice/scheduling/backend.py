"""The interface every scheduler backend implements, and the slot a granted request holds.

A backend keeps, for each deployment with a capacity, how many requests run and who waits, and decides who goes
next (:mod:`sluice.scheduling.ordering`). Three implement it: in-process (:mod:`.local`), Redis (:mod:`.redis`,
shared by replicas) and RabbitMQ (:mod:`.rabbitmq`, shared by replicas); one behavioural test suite runs
against all three.
"""

from __future__ import annotations

from collections.abc import Callable
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


class Slot:
    """A granted place on a deployment; :meth:`release` gives it back (once) and charges the tokens served."""

    __slots__ = ("_give_back", "output_weight", "position", "waited")

    def __init__(
        self, give_back: Callable[[float], None] | None, position: int = 0, waited: float = 0.0, weight: float = 1.0
    ) -> None:
        self._give_back = give_back
        self.position = position  # place in line at enqueue; 0 when it ran at once
        self.waited = waited  # seconds spent waiting
        self.output_weight = weight

    def release(self, usage: Usage | None = None) -> None:
        give_back = self._give_back
        if give_back is None:
            return
        self._give_back = None
        charge = usage.prompt_tokens + self.output_weight * usage.completion_tokens if usage is not None else 0.0
        give_back(charge)

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
        takes it out of line at once; a slot granted to a caller that was cancelled meanwhile is given back.
        """
        ...

    async def snapshot(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Per deployment: capacity, in flight, waiting per class, oldest wait, estimated wait."""
        ...

    async def waiting_of(self, owner: str) -> list[dict[str, Any]]:
        """The requests ``owner`` has waiting, with their current place in line."""
        ...

    def local_depths(self) -> dict[tuple[str, str], int]:
        """Requests waiting in this process, by (deployment, class), for the queue depth gauge."""
        ...


def queue_full(request: Request, retry_after: int) -> QueueFull:
    rule = request.rule
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
