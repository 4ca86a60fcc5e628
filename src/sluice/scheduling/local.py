"""The in-process backend (the default): one :class:`SlotBook` per deployment, waiters parked on futures.

A request that finds a free slot takes it synchronously: no lock, no task, no timer. Only a request that must
wait creates a future (and, when its class has a max wait, one timer handle). Everything runs on the event
loop's thread, so the books need no locks: each step below completes without awaiting.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Collection
from typing import Any

from sluice.scheduling.backend import Request, Slot, WaiterLeft, queue_full, queue_timeout
from sluice.scheduling.book import Outcome, SlotBook
from sluice.scheduling.ordering import Policy, Ticket


class LocalBackend:
    name = "local"

    def __init__(self, policy: Policy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.books: dict[str, SlotBook] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._alive: dict[str, Callable[[], bool]] = {}  # waiting ticket -> its client's liveness, when known
        self._ids = itertools.count(1)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for future in self._waiters.values():
            future.cancel()

    def book(self, request: Request) -> SlotBook:
        book = self.books.get(request.deployment)
        if book is None:
            book = self.books[request.deployment] = SlotBook(request.deployment, request.capacity, self.policy)
        elif book.capacity != request.capacity:
            book.capacity = request.capacity  # a catalog reload changed it; the line stays
            self._grant(book)
        return book

    async def acquire(self, request: Request, output_weight: float) -> Slot:
        book = self.book(request)
        ticket_id = str(next(self._ids))
        now = self.clock()
        if book.has_room():  # the fast path: no awaiting, no allocation beyond the slot itself
            book.start(ticket_id, request.tenant, now, request.upfront)
            return Slot(self._giver(book, ticket_id), weight=output_weight, upfront=request.upfront)
        ticket = Ticket(ticket_id, request.tenant, request.rule, now, 0, request.owner, request.note, request.upfront)
        admission = book.admit(ticket, now)
        if admission.outcome is Outcome.FULL:
            raise queue_full(request, admission.retry_after, admission.tenant_full)
        if admission.outcome is Outcome.GRANTED:
            return Slot(self._giver(book, ticket_id), weight=output_weight, upfront=request.upfront)
        await self._wait(book, request, ticket)
        waited = self.clock() - now
        return Slot(self._giver(book, ticket_id), admission.position, waited, output_weight, request.upfront)

    async def _wait(self, book: SlotBook, request: Request, ticket: Ticket) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters[ticket.id] = future
        if request.alive is not None:
            self._alive[ticket.id] = request.alive
        max_wait = request.rule.max_wait
        timer = loop.call_later(max_wait, self._expire, book, request, ticket.id) if max_wait is not None else None
        try:
            await future
        except BaseException:
            # Cancelled (client gone) or timed out: leave the line, or give back a slot granted meanwhile.
            if not book.cancel(ticket.id) and book.finish(ticket.id, 0.0, self.clock(), refund=True):
                self._grant(book)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.pop(ticket.id, None)
            self._alive.pop(ticket.id, None)

    def _expire(self, book: SlotBook, request: Request, ticket_id: str) -> None:
        place = book.place_of(ticket_id, self.clock())
        future = self._waiters.get(ticket_id)
        if future is not None and not future.done() and book.cancel(ticket_id):
            future.set_exception(queue_timeout(request, book.retry_after(place)))

    def _giver(self, book: SlotBook, ticket_id: str) -> Callable[[float], None]:
        def give_back(charge: float) -> None:
            if book.finish(ticket_id, charge, self.clock()):
                self._grant(book)

        return give_back

    def _grant(self, book: SlotBook) -> None:
        while True:
            granted = book.grant(self.clock())
            if not granted:
                return
            abandoned = False
            for ticket in granted:
                future = self._waiters.get(ticket.id)
                alive = self._alive.get(ticket.id)
                if future is None or future.done():
                    # Its waiter was cancelled a moment ago and has not run its cleanup yet: the slot goes on
                    # (and the upfront charge back: nothing was served).
                    book.finish(ticket.id, 0.0, self.clock(), refund=True)
                    abandoned = True
                elif alive is not None and not alive():
                    # Its client left in this loop turn; the task that would cancel the waiter has not run yet.
                    # Granting would send a request nobody waits for upstream: the slot goes on instead.
                    book.finish(ticket.id, 0.0, self.clock(), refund=True)
                    future.set_exception(WaiterLeft())
                    abandoned = True
                else:
                    future.set_result(None)
            if not abandoned:
                return

    async def snapshot(self, tenant: str | None = None, known: Collection[str] = ()) -> list[dict[str, Any]]:
        now = self.clock()
        return [book.snapshot(now, tenant) for book in self.books.values()]

    async def waiting_of(self, owner: str, known: Collection[str] = ()) -> list[dict[str, Any]]:
        now = self.clock()
        return [entry for book in self.books.values() for entry in book.waiting_of(owner, now)]

    def local_depths(self) -> dict[tuple[str, str], int]:
        return {
            (book.deployment, rule.name): book.depth[rule.rank]
            for book in self.books.values()
            for rule in self.policy.classes
        }
