"""The RabbitMQ dispatcher of one deployment: the single replica that grants its slots, up to capacity.

Every replica that serves the deployment subscribes to its control queue (``x-single-active-consumer``); RabbitMQ
delivers to one of them only, and the first control message it receives makes that replica the dispatcher. It
then consumes the deployment's ticket queues and drives a :class:`SlotBook` from the messages, so it orders
requests exactly as the in-process backend does. A ticket stays unacknowledged while it waits *and* while its
request runs: the slot is that unacknowledged delivery, and acknowledging it on release frees it. If the
dispatcher's replica dies, RabbitMQ puts every ticket it held back in its queue and the next replica in line
takes over. It grants nothing until it has received the tickets that were waiting when it took over; if any of
them comes back redelivered (a previous dispatcher held it), it asks every replica which tickets they are
running (a census on a fanout exchange) and waits a moment for the answers before granting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aio_pika.abc import AbstractIncomingMessage

from sluice.scheduling.book import Outcome, Running, SlotBook
from sluice.scheduling.ordering import Policy, Ticket

log = structlog.get_logger("sluice.scheduling")

CENSUS_SECONDS = 0.3  # after a census, grant nothing for this long while replicas report the slots they hold
RECOVERY_MAX_SECONDS = 2.0  # a takeover never holds grants back for longer than this
FORGET_SECONDS = 120.0  # how long a release or cancel that arrived before its ticket is remembered


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledge a ticket's delivery: its slot (or its place in line) is free in RabbitMQ too."""

    message: AbstractIncomingMessage


@dataclass(frozen=True, slots=True)
class Reply:
    """Tell a replica about its ticket (or answer its peek); ``about`` is the ticket, if any."""

    queue: str
    body: dict[str, Any]
    about: str | None = None


@dataclass(frozen=True, slots=True)
class Census:
    """Ask every replica which of this deployment's tickets it is running."""


Action = Ack | Reply | Census


class Dispatcher:
    """Grants one deployment's slots from the tickets and control messages RabbitMQ delivers to it."""

    def __init__(
        self,
        deployment: str,
        policy: Policy,
        lease: float,
        send: Callable[[list[Action]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployment = deployment
        self.policy = policy
        self.lease = lease
        self.send = send  # hands actions to the sender, which performs them in order
        self.clock = clock
        self.book: SlotBook | None = None  # made when the first ticket says what the capacity is
        self.deliveries: dict[str, AbstractIncomingMessage] = {}  # ticket -> its unacknowledged delivery
        self.replies: dict[str, str] = {}  # ticket -> its owner's reply queue
        self.positions: dict[str, int] = {}  # ticket -> its place at enqueue
        self.leases: dict[str, float] = {}  # running ticket -> lease expiry
        self.reported: dict[str, float] = {}  # tickets replicas say they run, not delivered (yet) -> when
        self.released: dict[str, float] = {}  # released or cancelled before their ticket arrived -> when
        self.took_over = self.clock()
        self.backlog: dict[str, int] | None = None  # queue -> tickets it held at takeover, not delivered yet
        self.census_until: float | None = None  # set once a redelivered ticket shows a previous dispatcher

    def expect(self, backlog: dict[str, int]) -> None:
        """The tickets each queue held when this dispatcher took over (they arrive before it grants)."""
        self.backlog = {queue: n for queue, n in backlog.items() if n > 0}
        self.grant()

    # --- tickets --------------------------------------------------------------------------------------------------

    def on_ticket(self, message: AbstractIncomingMessage) -> None:
        now = self.clock()
        was_recovering = self.recovering(now)
        self._arrived(message, now)
        self._take(message, now)
        if was_recovering and not self.recovering(now):
            self.grant()

    def _arrived(self, message: AbstractIncomingMessage, now: float) -> None:
        if self.backlog:
            left = self.backlog.get(message.routing_key or "", 0) - 1
            if left > 0:
                self.backlog[message.routing_key or ""] = left
            else:
                self.backlog.pop(message.routing_key or "", None)
        if message.redelivered and self.census_until is None:
            self.census_until = now + CENSUS_SECONDS
            self.send([Census()])

    def _take(self, message: AbstractIncomingMessage, now: float) -> None:
        data = orjson.loads(message.body)
        ticket_id: str = data["id"]
        book = self._book(int(data["capacity"]))
        if ticket_id in self.deliveries:
            return  # a duplicate delivery of a ticket we hold; ignore
        if self.released.pop(ticket_id, None) is not None:
            self.send([Ack(message)])  # released or cancelled before it got here
            return
        self.deliveries[ticket_id] = message
        rule = self.policy.classes[int(data["rank"])]
        enqueued = min(float(data["enq"]), now)  # the owner's clock; never in the future of ours
        upfront = float(data.get("upfront", 0.0))
        ticket = Ticket(
            ticket_id, data["tenant"], rule, enqueued, 0, data.get("owner", ""), data.get("note", ""), upfront
        )
        self.replies[ticket_id] = data["reply"]
        if self.reported.pop(ticket_id, None) is not None:
            # Running on a live replica since before the failover: it holds a slot again, and nothing is sent.
            book.fair.join(ticket.tenant)
            book.running[ticket_id] = Running(ticket.tenant, now)
            self.leases[ticket_id] = now + self.lease
            return
        admission = book.admit(ticket, now, start=not self.recovering(now))
        if admission.outcome is Outcome.FULL:
            reply = self._reply(ticket_id, "full", retry_after=admission.retry_after, tenant=admission.tenant_full)
            self.send([*self._done(ticket_id), reply])
        elif admission.outcome is Outcome.GRANTED:
            self.leases[ticket_id] = now + self.lease
            self.send([self._reply(ticket_id, "granted", position=0)])
        else:
            self.positions[ticket_id] = admission.position
            self.send([self._reply(ticket_id, "queued", position=admission.position)])

    def _book(self, capacity: int) -> SlotBook:
        if self.book is None:
            self.book = SlotBook(self.deployment, capacity, self.policy)
        self.book.capacity = capacity
        return self.book

    def recovering(self, now: float) -> bool:
        """Whether grants are held back after a takeover (see the module docstring)."""
        if now >= self.took_over + RECOVERY_MAX_SECONDS:
            return False
        if self.backlog is None or self.backlog:
            return True
        return self.census_until is not None and now < self.census_until

    # --- control messages -----------------------------------------------------------------------------------------

    def on_control(self, data: dict[str, Any]) -> list[Action]:
        """Apply one control message; returns what is not a slot change (a peek's answer)."""
        kind = data.get("k")
        now = self.clock()
        if kind == "renew":
            for ticket_id in data.get("held", []):
                if self.book is not None and ticket_id in self.book.running:
                    self.leases[ticket_id] = now + self.lease
                elif ticket_id not in self.deliveries:
                    self.reported[ticket_id] = now
        elif kind == "release":
            self.give_back(str(data["id"]), float(data.get("charge", 0.0)), bool(data.get("refund", False)))
        elif kind == "cancel":
            self.withdraw(str(data["id"]))
        elif kind == "peek":
            return [Reply(str(data["reply"]), self.peek(data))]
        return []

    def give_back(self, ticket_id: str, charge: float, refund: bool = False) -> None:
        book = self.book
        if book is None or not book.finish(ticket_id, charge, self.clock(), refund):
            if book is None or ticket_id not in book.waiting:
                self.released[ticket_id] = self.clock()
                return
            book.cancel(ticket_id)  # released while still waiting: it is out of line either way
        self.send(self._done(ticket_id))
        self.grant()

    def withdraw(self, ticket_id: str) -> None:
        book = self.book
        if book is not None and book.cancel(ticket_id):
            self.send(self._done(ticket_id))
        else:
            self.give_back(ticket_id, 0.0, refund=True)  # granted before the cancel arrived: the slot goes on

    def owner_gone(self, ticket_id: str) -> None:
        """A reply could not be delivered: the replica that asked is gone, so is its request."""
        self.withdraw(ticket_id)

    # --- granting -------------------------------------------------------------------------------------------------

    def grant(self) -> None:
        book = self.book
        now = self.clock()
        if book is None or self.recovering(now):
            return
        actions: list[Action] = []
        for ticket in book.grant(now):
            self.leases[ticket.id] = now + self.lease
            actions.append(self._reply(ticket.id, "granted", position=self.positions.pop(ticket.id, 0)))
        if actions:
            self.send(actions)

    def tick(self) -> None:
        """Free the slots of replicas that stopped renewing them; forget old notes; grant what is free."""
        now = self.clock()
        for ticket_id, expiry in list(self.leases.items()):
            if expiry <= now and self.book is not None and ticket_id in self.book.running:
                log.warning("slot lease expired: its replica stopped renewing", deployment=self.deployment)
                self.book.finish(ticket_id, 0.0, now)
                self.send(self._done(ticket_id))
        for notes in (self.released, self.reported):
            for ticket_id, at in list(notes.items()):
                if at < now - FORGET_SECONDS:
                    del notes[ticket_id]
        self.grant()

    def next_expiry(self) -> float | None:
        """When the earliest lease runs out (the next moment :meth:`tick` may free a slot)."""
        return min(self.leases.values(), default=None)

    # --- bookkeeping --------------------------------------------------------------------------------------------

    def _reply(self, ticket_id: str, kind: str, **fields: Any) -> Reply:
        return Reply(self.replies.get(ticket_id, ""), {"k": kind, "id": ticket_id, **fields}, ticket_id)

    def _done(self, ticket_id: str) -> list[Action]:
        """Forget a ticket that left (released, cancelled, refused, expired) and acknowledge its delivery."""
        self.replies.pop(ticket_id, None)
        self.positions.pop(ticket_id, None)
        self.leases.pop(ticket_id, None)
        message = self.deliveries.pop(ticket_id, None)
        return [Ack(message)] if message is not None else []

    def peek(self, data: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        book = self.book
        owner = data.get("owner")
        return {
            "k": "peeked",
            "corr": data.get("corr"),
            "snapshot": book.snapshot(now, data.get("tenant")) if book is not None else None,
            "waiting": book.waiting_of(owner, now) if book is not None and owner else [],
        }
