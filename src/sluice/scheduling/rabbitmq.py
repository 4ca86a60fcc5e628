"""The RabbitMQ backend: shared capacity and one order per deployment, granted by one dispatcher at a time.

Topology per deployment ``D`` (names under the configured prefix ``P``):

- ``P.D.wait.<class>``: where a replica publishes a waiting request's ticket. Each class's queue has a message
  TTL of the class's aging step and dead-letters expired tickets into the next class up (the top class into
  ``P.D.wait.aged``), so a ticket RabbitMQ still holds climbs the classes by itself. The dispatcher takes tickets
  into its book as they arrive and applies the same aging schedule there from each ticket's enqueue time.
- ``P.D.control``: a priority queue (``x-max-priority``: releases and cancels overtake renewals) with a single
  active consumer: the replica it delivers to is the deployment's dispatcher (:mod:`.rabbitmq_dispatch`).
- ``P.reply.<replica>``: each replica's own exclusive queue for answers (queued, granted, full), bound to the
  fanout exchange ``P.census`` through which a new dispatcher asks who holds which slots.

A replica holding slots renews them every quarter lease; the dispatcher frees the slots of a replica that stops
(a ``kill -9``) when their lease runs out, and a slot granted to a replica that is gone (its reply queue went with
its connection) is freed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, DeliveryError

from sluice.errors import Overloaded, QueueFull
from sluice.scheduling.backend import Request, Slot, WaiterLeft, queue_full, queue_timeout, still_wanted
from sluice.scheduling.ordering import Policy
from sluice.scheduling.rabbitmq_link import Link

log = structlog.get_logger("sluice.scheduling")

QUEUE_EXPIRES_MS = 3_600_000  # queues nobody has used for an hour go away (a deployment removed from the config)
URGENT, ROUTINE = 2, 1  # control message priorities
PEEK_TIMEOUT = 2.0
MAX_NAME_PART = 160


@dataclass
class Waiter:
    admitted: asyncio.Future[dict[str, Any]]  # the dispatcher's first answer: queued, granted or full
    granted: asyncio.Future[None]

    def on_reply(self, data: dict[str, Any]) -> None:
        if not self.admitted.done():
            self.admitted.set_result(data)
        if data["k"] == "granted" and not self.granted.done():
            self.granted.set_result(None)

    def fail(self, error: Exception) -> None:
        """End the wait with ``error`` (on whichever answer is still awaited)."""
        if not self.admitted.done():
            self.admitted.set_exception(error)
        elif not self.granted.done():
            self.granted.set_exception(error)


class RabbitBackend:
    name = "rabbitmq"

    def __init__(
        self, url: str, policy: Policy, *, prefix: str, lease: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url
        self.policy = policy
        self.prefix = prefix
        self.lease = lease
        self.clock = clock
        self.replica = uuid.uuid4().hex
        self.reply_queue = f"{prefix}.reply.{self.replica}"
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._lost = asyncio.Event()
        self._links: dict[str, Link] = {}
        self._linking: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, Waiter] = {}
        self._peeks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._held: dict[str, set[str]] = {}
        self._depths: dict[tuple[str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[Any]] = set()

    # --- connection -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._connect()
        except (AMQPError, OSError) as exc:
            log.warning("scheduler rabbitmq unreachable at start; retrying", error=type(exc).__name__)
        self._tasks = [
            asyncio.create_task(self._supervise(), name="sluice-sched-amqp"),
            asyncio.create_task(self._renew_forever(), name="sluice-sched-renew"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        dropped = self._drop_links()
        if dropped:
            await asyncio.wait(dropped, timeout=5)
        if self._connection is not None:
            with contextlib.suppress(AMQPError, OSError):
                await self._connection.close()

    async def ping(self) -> None:
        """Raise unless this replica's broker connection is up and the broker answers (for ``/health/ready``).

        A channel opened and closed is one round trip each way on the live connection, without touching the
        channel the scheduler works on.
        """
        connection = self._connection
        if connection is None or connection.is_closed:
            raise ConnectionError("not connected to the broker")
        channel = await connection.channel(publisher_confirms=False)
        await channel.close()

    async def _connect(self) -> None:
        self._lost = asyncio.Event()
        connection = await aio_pika.connect(self.url, client_properties={"connection_name": f"sluice-{self.replica}"})
        connection.close_callbacks.add(lambda *_: self._lost.set())
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        census = await channel.declare_exchange(f"{self.prefix}.census", aio_pika.ExchangeType.FANOUT)
        replies = await channel.declare_queue(self.reply_queue, exclusive=True, auto_delete=True)
        await replies.bind(census)
        await replies.consume(self._on_reply, no_ack=True)
        self._connection, self._channel = connection, channel

    async def _supervise(self) -> None:
        while True:
            if self._connection is None or self._connection.is_closed:
                try:
                    await self._connect()
                except (AMQPError, OSError):
                    await asyncio.sleep(1.0)
                    continue
            await self._lost.wait()
            log.warning("scheduler rabbitmq connection lost; reconnecting")
            self._channel = None
            self._drop_links()
            for waiter in self._waiters.values():  # their answers may be lost with the reply queue
                waiter.fail(_unavailable())
            await asyncio.sleep(0.2)

    def _drop_links(self) -> list[asyncio.Task[None]]:
        tasks = [task for link in self._links.values() for task in link.stop()]
        self._links.clear()
        return tasks

    # --- topology ---------------------------------------------------------------------------------------------------

    def _queue(self, deployment: str, part: str) -> str:
        if len(deployment.encode()) > MAX_NAME_PART:  # queue names are at most 255 bytes
            deployment = hashlib.sha256(deployment.encode()).hexdigest()
        return f"{self.prefix}.{deployment}.{part}"

    async def _link(self, deployment: str) -> Link:
        link = self._links.get(deployment)
        if link is not None:
            return link
        async with self._linking.setdefault(deployment, asyncio.Lock()):
            link = self._links.get(deployment)
            if link is not None:
                return link
            if self._connection is None or self._channel is None:
                raise _unavailable()
            for rule in self.policy.classes:
                above = self.policy.classes[rule.rank - 1].name if rule.rank else "aged"
                await self._channel.declare_queue(
                    self._queue(deployment, f"wait.{rule.name}"),
                    arguments={
                        "x-message-ttl": round(rule.climb[0] * 1000),
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": self._queue(deployment, f"wait.{above}"),
                        "x-expires": QUEUE_EXPIRES_MS,
                    },
                )
            await self._channel.declare_queue(self._queue(deployment, "wait.aged"), arguments=_EXPIRES)
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            control = await channel.declare_queue(self._queue(deployment, "control"), arguments=_CONTROL)
            names = [
                self._queue(deployment, f"wait.{part}") for part in ["aged", *(r.name for r in self.policy.classes)]
            ]
            link = Link(deployment, channel, names, f"{self.prefix}.census", self.policy, self.lease)
            await control.consume(link.on_control, no_ack=False)
            self._links[deployment] = link
        await self._tell(deployment, {"k": "renew", "held": []}, ROUTINE)  # wakes the dispatcher if there is none
        return link

    # --- acquiring ----------------------------------------------------------------------------------------------------

    async def acquire(self, request: Request, output_weight: float) -> Slot:
        deployment, rule = request.deployment, request.rule
        await self._link(deployment)
        ticket = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        waiter = Waiter(loop.create_future(), loop.create_future())
        self._waiters[ticket] = waiter
        started = self.clock()
        settled = False  # the ticket is known to be out of line (granted to us, or refused)
        try:
            body = {
                "id": ticket,
                "tenant": request.tenant,
                "rank": rule.rank,
                "reply": self.reply_queue,
                "owner": request.owner,
                "note": request.note,
                "capacity": request.capacity,
                "enq": time.time(),
                "upfront": request.upfront,
            }
            await self._publish(deployment, f"wait.{rule.name}", body)
            first = await self._within_max_wait(waiter.admitted, request, started)
            settled = first["k"] != "queued"
            if first["k"] == "full":
                raise queue_full(request, int(first.get("retry_after", 1)), bool(first.get("tenant", False)))
            position = int(first.get("position", 0))
            if first["k"] == "queued":
                key = (deployment, rule.name)
                self._depths[key] = self._depths.get(key, 0) + 1
                try:
                    await self._within_max_wait(waiter.granted, request, started)
                finally:
                    self._depths[key] -= 1
                settled = True
                if not still_wanted(request):
                    release = {"k": "release", "id": ticket, "charge": 0.0, "refund": True}
                    self._spawn(self._tell(deployment, release, URGENT))
                    raise WaiterLeft
        except BaseException as exc:
            if not settled and not isinstance(exc, QueueFull):
                # Client gone, max wait, or the broker failed: out of line, or a just-granted slot given back.
                self._spawn(self._tell(deployment, {"k": "cancel", "id": ticket}, URGENT))
            raise
        finally:
            self._waiters.pop(ticket, None)
        self._held.setdefault(deployment, set()).add(ticket)
        waited = self.clock() - started if position else 0.0
        return Slot(self._giver(deployment, ticket), position, waited, output_weight, request.upfront)

    async def _within_max_wait(self, future: asyncio.Future[Any], request: Request, started: float) -> Any:
        max_wait = request.rule.max_wait
        if max_wait is None:
            return await future
        done, _ = await asyncio.wait({future}, timeout=max(0.0, started + max_wait - self.clock()))
        if not done:
            raise queue_timeout(request, 1)
        return future.result()

    def _giver(self, deployment: str, ticket: str) -> Callable[[float], None]:
        def give_back(charge: float) -> None:
            self._held.get(deployment, set()).discard(ticket)
            self._spawn(self._tell(deployment, {"k": "release", "id": ticket, "charge": charge}, URGENT))

        return give_back

    async def _publish(self, deployment: str, part: str, body: dict[str, Any], priority: int = 0) -> None:
        channel = self._channel
        if channel is None:
            raise _unavailable()
        message = aio_pika.Message(orjson.dumps(body), priority=priority)
        try:
            await channel.default_exchange.publish(message, self._queue(deployment, part))
        except (AMQPError, OSError) as exc:
            if isinstance(exc, DeliveryError):
                self._links.pop(deployment, None)  # its queues are gone (deleted by hand?): declare them again
            raise _unavailable() from exc

    async def _tell(self, deployment: str, body: dict[str, Any], priority: int) -> None:
        """A message to the deployment's dispatcher (releases, cancels, renewals, peeks)."""
        await self._publish(deployment, "control", {"reply": self.reply_queue, **body}, priority)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("scheduler message not sent; the slot's lease will free it", error=str(task.exception()))

    # --- messages to this replica -------------------------------------------------------------------------------------

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        data = orjson.loads(message.body)
        kind = data.get("k")
        if kind == "census":
            self._spawn(self._renew(str(data["d"])))
        elif kind == "peeked":
            future = self._peeks.pop(str(data.get("corr")), None)
            if future is not None and not future.done():
                future.set_result(data)
        else:
            waiter = self._waiters.get(str(data.get("id")))
            if waiter is not None:
                waiter.on_reply(data)
            elif kind == "granted":  # its waiter left meanwhile: the slot goes straight back, its charge too
                release = {"k": "release", "id": data["id"], "charge": 0.0, "refund": True}
                self._spawn(self._tell(str(data["d"]), release, URGENT))

    async def _renew(self, deployment: str) -> None:
        await self._tell(deployment, {"k": "renew", "held": sorted(self._held.get(deployment, ()))}, ROUTINE)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 4)
            for deployment in list(self._links):
                with contextlib.suppress(Overloaded):
                    await self._renew(deployment)

    # --- what callers are told ----------------------------------------------------------------------------------------

    async def _peek(
        self, known: Collection[str], tenant: str | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """Ask each deployment's dispatcher: the ones this replica has served, and the ``known`` ones (linked here
        first, so a replica that has not served a deployment still reaches the dispatcher that holds its line)."""
        for deployment in known:
            if deployment not in self._links:
                with contextlib.suppress(Overloaded):
                    await self._link(deployment)
        loop = asyncio.get_running_loop()
        asked = []
        for deployment in sorted(self._links):
            corr = uuid.uuid4().hex
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._peeks[corr] = future
            await self._tell(deployment, {"k": "peek", "corr": corr, "tenant": tenant, "owner": owner}, ROUTINE)
            asked.append((corr, future))
        answers = []
        for corr, future in asked:
            done, _ = await asyncio.wait({future}, timeout=PEEK_TIMEOUT)
            self._peeks.pop(corr, None)
            if done:
                answers.append(future.result())
        return answers

    async def snapshot(self, tenant: str | None = None, known: Collection[str] = ()) -> list[dict[str, Any]]:
        return [a["snapshot"] for a in await self._peek(known, tenant=tenant) if a.get("snapshot") is not None]

    async def waiting_of(self, owner: str, known: Collection[str] = ()) -> list[dict[str, Any]]:
        return [entry for a in await self._peek(known, owner=owner) for entry in a.get("waiting", [])]

    def local_depths(self) -> dict[tuple[str, str], int]:
        return dict(self._depths)


_EXPIRES: dict[str, Any] = {"x-expires": QUEUE_EXPIRES_MS}
_CONTROL: dict[str, Any] = {"x-max-priority": URGENT, "x-single-active-consumer": True, **_EXPIRES}


def _unavailable() -> Overloaded:
    return Overloaded(
        "The shared queue cannot be reached right now; try again shortly.",
        code="scheduler_unavailable",
        headers={"Retry-After": "1"},
    )
