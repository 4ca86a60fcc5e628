"""One deployment as a RabbitMQ replica sees it: its queues are declared and it is a candidate dispatcher.

The replica consumes the deployment's control queue (single active consumer). The first control message that
reaches it means RabbitMQ has made it the active consumer: it becomes the deployment's dispatcher, consumes the
ticket queues, and performs what its :class:`Dispatcher` decides (acknowledgements and replies, in order) from
one sender task, so a reply can never overtake the one decided before it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import orjson
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, DeliveryError

from sluice.scheduling.ordering import Policy
from sluice.scheduling.rabbitmq_dispatch import Ack, Action, Census, Dispatcher, Reply

log = structlog.get_logger("sluice.scheduling")

RECOVERY_TICK = 0.02  # how often a takeover checks whether it may grant again


class Link:
    def __init__(
        self, deployment: str, channel: AbstractChannel, tickets: list[str], census: str, policy: Policy, lease: float
    ) -> None:
        self.deployment = deployment
        self.channel = channel  # the control consumer and, once dispatching, the ticket consumers live on it
        self.tickets = tickets  # the ticket queues' names, aged first
        self.census = census
        self.policy = policy
        self.lease = lease
        self.dispatcher: Dispatcher | None = None
        self.actions: asyncio.Queue[Action] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []

    def stop(self) -> list[asyncio.Task[None]]:
        for task in self.tasks:
            task.cancel()
        return self.tasks

    async def on_control(self, message: AbstractIncomingMessage) -> None:
        dispatcher = self.dispatcher or self._become_dispatcher()
        for action in dispatcher.on_control(orjson.loads(message.body)):
            self.actions.put_nowait(action)
        await message.ack()

    def _become_dispatcher(self) -> Dispatcher:
        log.info("dispatching", deployment=self.deployment)

        def send(actions: list[Action]) -> None:
            for action in actions:
                self.actions.put_nowait(action)

        dispatcher = self.dispatcher = Dispatcher(self.deployment, self.policy, self.lease, send)
        self.tasks += [
            asyncio.create_task(self._consume_tickets(dispatcher), name=f"sluice-sched-tickets-{self.deployment}"),
            asyncio.create_task(self._send_forever(dispatcher), name=f"sluice-sched-send-{self.deployment}"),
            asyncio.create_task(self._tick_forever(dispatcher), name=f"sluice-sched-tick-{self.deployment}"),
        ]
        return dispatcher

    async def _consume_tickets(self, dispatcher: Dispatcher) -> None:
        queues = [await self.channel.declare_queue(name, passive=True) for name in self.tickets]
        dispatcher.expect({q.name: q.declaration_result.message_count or 0 for q in queues})

        async def on_ticket(message: AbstractIncomingMessage) -> None:
            dispatcher.on_ticket(message)

        for queue in queues:
            await queue.consume(on_ticket, no_ack=False)

    async def _send_forever(self, dispatcher: Dispatcher) -> None:
        """Perform the dispatcher's acknowledgements and replies, in the order it decided them."""
        while True:
            action = await self.actions.get()
            try:
                await self._perform(action)
            except DeliveryError:
                if isinstance(action, Reply) and action.about is not None:
                    dispatcher.owner_gone(action.about)  # its replica is gone, and its request with it
            except (AMQPError, OSError) as exc:
                log.warning("dispatcher could not send", deployment=self.deployment, error=type(exc).__name__)

    async def _perform(self, action: Action) -> None:
        if isinstance(action, Ack):
            await action.message.ack()
        elif isinstance(action, Census):
            census = await self.channel.get_exchange(self.census)
            await census.publish(_message({"k": "census", "d": self.deployment}), "")
        elif action.queue:
            await self.channel.default_exchange.publish(_message({**action.body, "d": self.deployment}), action.queue)

    async def _tick_forever(self, dispatcher: Dispatcher) -> None:
        while True:
            now = time.time()
            pause = min(1.0, self.lease / 4)
            expiry = dispatcher.next_expiry()
            if expiry is not None:
                pause = min(pause, max(0.0, expiry - now) + 0.005)  # free a dead replica's slot on the dot
            if dispatcher.recovering(now):
                pause = RECOVERY_TICK  # grants resume as soon as a takeover is over
            await asyncio.sleep(pause)
            dispatcher.tick()


def _message(body: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(orjson.dumps(body))
