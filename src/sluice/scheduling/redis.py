"""The Redis backend: one capacity and one global order per deployment, shared by every replica.

Each step is one Lua script (:mod:`.redis_scripts`), so capacity is exact however many replicas ask at once.
Slots are leases: the holder renews them every quarter lease, and a replica killed with slots in hand stops
renewing, so its slots expire and go to the next in line once the lease runs out (every replica sweeps at the
moment the earliest lease falls due). A waiter is woken by a message on its replica's channel, not by polling;
it also checks its ticket now and then, so a lost message costs a short delay, never a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sluice.errors import Overloaded, QueueTimeout
from sluice.observability.log_throttle import LogThrottle
from sluice.scheduling.backend import Request, Slot, WaiterLeft, queue_full, queue_timeout, still_wanted
from sluice.scheduling.book import Running, SlotBook
from sluice.scheduling.ordering import Policy, Ticket, retry_after
from sluice.scheduling.redis_scripts import ACQUIRE, CANCEL, RELEASE, SWEEP

log = structlog.get_logger("sluice.scheduling")

US = "\x1f"
MAX_CHECK_SECONDS = 1.0  # a waiter confirms its ticket at least this often, in case a grant message was lost


class RedisBackend:
    name = "redis"

    def __init__(
        self,
        redis: Redis,
        policy: Policy,
        *,
        prefix: str,
        lease: float,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = 0.5,
    ) -> None:
        self.redis = redis
        self.deadline = deadline  # each Redis call on a request's path (a hung Redis: 503 after this)
        self._warnings = LogThrottle(log)  # while Redis is down every request fails alike: one line per interval
        self.policy = policy
        self.prefix = prefix
        self.lease_ms = int(lease * 1000)
        self.clock = clock
        self.replica = uuid.uuid4().hex
        self.channel_prefix = f"{prefix}:grant:"
        self.check_every = min(MAX_CHECK_SECONDS, lease / 4)
        self._policy = json.dumps(
            [
                [
                    [round(c * 1000) for c in r.climb],
                    -1 if r.max_queue is None else r.max_queue,
                    -1 if r.max_queue_per_tenant is None else r.max_queue_per_tenant,
                ]
                for r in policy.classes
            ]
        )
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._cancel = redis.register_script(CANCEL)
        self._sweep = redis.register_script(SWEEP)
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._held: dict[str, set[str]] = {}  # deployment -> tickets this replica holds
        self._known: set[str] = set()  # deployments registered in <prefix>:deployments
        self._depths: dict[tuple[str, str], int] = {}
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self.channel_prefix + self.replica)
        self._tasks = [
            asyncio.create_task(self._listen(), name="sluice-sched-listen"),
            asyncio.create_task(self._upkeep(), name="sluice-sched-upkeep"),
        ]

    async def close(self) -> None:
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()  # again each round: a cancellation landing mid-command can be lost (see below)
            _, pending = await asyncio.wait(pending, timeout=0.1)
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                await self._pubsub.aclose()

    # --- acquiring ----------------------------------------------------------------------------------------------

    def _base(self, deployment: str) -> str:
        return f"{self.prefix}:{{{deployment}}}"

    async def _call(self, script: Callable[..., Awaitable[Any]], deployment: str, *args: Any) -> Any:
        try:
            argv = [self._policy, self.channel_prefix, deployment, *args]
            async with asyncio.timeout(self.deadline):
                result = await script(keys=[self._base(deployment)], args=argv)
        except (RedisError, TimeoutError) as exc:
            self._warnings.warning("redis-down", "scheduler redis unavailable", error=type(exc).__name__)
            raise Overloaded(
                "The shared queue cannot be reached right now; try again shortly.",
                code="scheduler_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
        _resurface_cancellation()
        return result

    async def acquire(self, request: Request, output_weight: float) -> Slot:
        deployment = request.deployment
        if deployment not in self._known:
            await self._register(deployment)
        ticket = uuid.uuid4().hex
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future  # before the script runs: a grant may be announced before it returns
        started = self.clock()
        settled = False  # the ticket is known to be out of line (granted to us, refused, or cancelled)
        try:
            result = await self._call(
                self._acquire,
                deployment,
                ticket,
                request.tenant,
                request.rule.rank,
                self.replica,
                request.owner,
                request.note,
                request.capacity,
                self.lease_ms,
                request.upfront,
            )
            outcome = result[0].decode() if isinstance(result[0], bytes) else str(result[0])
            settled = outcome != "queued"
            if outcome == "full":
                mean = float(result[2]) / 1000
                tenant_full = len(result) > 3 and result[3] in (b"tenant", "tenant")
                raise queue_full(request, retry_after(int(result[1]), request.capacity, mean), tenant_full)
            place = 0
            if outcome == "queued":
                place = await self._place(deployment, ticket, int(result[1]))
                await self._wait(request, ticket, future, started)
                settled = True
                if not still_wanted(request):
                    self._spawn(self._call(self._cancel, deployment, ticket, self.lease_ms))  # gives it back
                    raise WaiterLeft
        except BaseException as exc:
            if not settled and not isinstance(exc, QueueTimeout):
                # Cancelled (client gone) or Redis failed: out of line at once, or a just-granted slot given back.
                self._spawn(self._call(self._cancel, deployment, ticket, self.lease_ms))
            raise
        finally:
            self._waiters.pop(ticket, None)
        self._held.setdefault(deployment, set()).add(ticket)
        waited = self.clock() - started if place else 0.0
        return Slot(self._giver(deployment, ticket), place, waited, output_weight, request.upfront)

    async def _wait(self, request: Request, ticket: str, future: asyncio.Future[None], started: float) -> None:
        key = (request.deployment, request.rule.name)
        self._depths[key] = self._depths.get(key, 0) + 1
        max_wait = request.rule.max_wait
        try:
            while True:
                timeout = self.check_every
                if max_wait is not None:
                    timeout = max(0.0, min(timeout, started + max_wait - self.clock()))
                done, _ = await asyncio.wait({future}, timeout=timeout)
                if done or await self._holds(request.deployment, ticket):
                    return
                if max_wait is not None and self.clock() - started >= max_wait:
                    outcome = await self._call(self._cancel, request.deployment, ticket, self.lease_ms)
                    if outcome in (b"cancelled", "cancelled"):
                        raise queue_timeout(request, retry_after(1, request.capacity, 0.0))
                    return  # granted in the meantime: take it
        finally:
            self._depths[key] -= 1

    async def _holds(self, deployment: str, ticket: str) -> bool:
        try:
            async with asyncio.timeout(self.deadline):
                held = await self.redis.zscore(self._base(deployment) + ":held", ticket) is not None
        except (RedisError, TimeoutError):
            return False
        _resurface_cancellation()
        return held

    async def _register(self, deployment: str) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                await self.redis.sadd(f"{self.prefix}:deployments", deployment)
        except (RedisError, TimeoutError):
            return  # only the snapshot misses it; acquire reports the outage itself
        self._known.add(deployment)

    def _giver(self, deployment: str, ticket: str) -> Callable[[float], None]:
        def give_back(charge: float) -> None:
            self._held.get(deployment, set()).discard(ticket)
            self._spawn(self._call(self._release, deployment, ticket, charge, self.lease_ms))

        return give_back

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("scheduler step failed; the slot's lease will free it", error=str(task.exception()))

    # --- background: grants, leases -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except RedisError:
                await asyncio.sleep(0.5)  # the waiters' own checks cover the gap
                continue
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            ticket = (data.decode() if isinstance(data, bytes) else str(data)).rpartition(US)[2]
            future = self._waiters.get(ticket)
            if future is not None and not future.done():
                future.set_result(None)

    async def _upkeep(self) -> None:
        """Renew this replica's leases, and free dead replicas' slots the moment their leases fall due."""
        while True:
            pause = self.lease_ms / 4000
            for deployment in await self._deployments():
                held = sorted(self._held.get(deployment, ()))
                try:
                    next_expiry, lost = await self._call(self._sweep, deployment, self.lease_ms, *held)
                except Overloaded:
                    continue
                for ticket in lost:
                    log.warning("a slot's lease expired while its request still ran", deployment=deployment)
                    self._held.get(deployment, set()).discard(ticket.decode() if isinstance(ticket, bytes) else ticket)
                if int(next_expiry) >= 0:
                    pause = min(pause, int(next_expiry) / 1000 + 0.005)
            await asyncio.sleep(max(0.01, pause))

    async def _deployments(self) -> set[str]:
        try:
            members = await self.redis.smembers(f"{self.prefix}:deployments")
        except RedisError:
            return set(self._known)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members} | self._known

    # --- what callers are told ----------------------------------------------------------------------------------

    async def _place(self, deployment: str, ticket: str, counted: int) -> int:
        """A just-queued ticket's place in the forecast grant order (``counted``, the script's count, if the
        shared state cannot be read or the ticket was granted meanwhile)."""
        try:
            book, now = await self._book(deployment)
        except RedisError:
            return counted
        _resurface_cancellation()
        return book.place_of(ticket, now) or counted

    async def _now(self) -> float:
        seconds, micros = await self.redis.time()
        return float(seconds + micros / 1e6)

    async def _book(self, deployment: str, now: float | None = None) -> tuple[SlotBook, float]:
        """One deployment's shared state, read into a book (one transaction), and Redis's clock."""
        if now is None:
            now = await self._now()
        base = self._base(deployment)
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(f"{base}:cap")
        for part in ("wait", "hinfo", "vtc", "served", "climb"):
            pipe.hgetall(f"{base}:{part}")
        pipe.lrange(f"{base}:svc", 0, -1)
        cap, wait, hinfo, vtc, served, climb, svc = await pipe.execute()
        book = self._restore(deployment, int(cap or 0), wait, hinfo, vtc, served, svc)
        book.standing.climbing.update({int(rank): int(at) / 1000 for rank, at in climb.items()})
        return book, now

    async def _books(self) -> tuple[list[SlotBook], float]:
        """Every deployment's shared state, read into books (for snapshots and waiting lists)."""
        now = await self._now()
        books = [(await self._book(deployment, now))[0] for deployment in sorted(await self._deployments())]
        return books, now

    def _restore(
        self,
        deployment: str,
        capacity: int,
        wait: dict[bytes, bytes],
        hinfo: dict[bytes, bytes],
        vtc: dict[bytes, bytes],
        served: dict[bytes, bytes],
        svc: list[bytes],
    ) -> SlotBook:
        book = SlotBook(deployment, max(1, capacity), self.policy)
        for raw_id, raw in wait.items():
            w = json.loads(raw)
            rule = self.policy.classes[int(w["r"])]
            ticket = Ticket(
                raw_id.decode(),
                w["t"],
                rule,
                w["e"] / 1000,
                int(w["s"]),
                w.get("p", ""),
                w.get("n", ""),
                float(w.get("c", 0.0)),
            )
            book.waiting[ticket.id] = ticket
            book.depth[rule.rank] += 1
            book.lines[ticket.line] = book.lines.get(ticket.line, 0) + 1
        for raw_id, raw in hinfo.items():
            tenant, started, *upfront = raw.decode().split(US)
            book.running[raw_id.decode()] = Running(tenant, int(started) / 1000, float(upfront[0]) if upfront else 0.0)
        book.fair.counters.update({k.decode(): float(v) for k, v in vtc.items()})
        for raw_line, at in served.items():
            tenant, _, rank = raw_line.decode().rpartition(US)
            book.standing.served[(tenant, int(rank))] = int(at) / 1000
        for ms in reversed(svc):
            book.service.add(int(ms) / 1000)
        book.standing.headroom = book.service.longest
        return book

    async def snapshot(self, tenant: str | None = None, known: Collection[str] = ()) -> list[dict[str, Any]]:
        books, now = await self._books()
        return [book.snapshot(now, tenant) for book in books]

    async def waiting_of(self, owner: str, known: Collection[str] = ()) -> list[dict[str, Any]]:
        books, now = await self._books()
        return [entry for book in books for entry in book.waiting_of(owner, now)]

    def local_depths(self) -> dict[tuple[str, str], int]:
        return dict(self._depths)


def _resurface_cancellation() -> None:
    """Raise the cancellation redis-py swallowed, if it did.

    redis-py (8.x, asyncio) can lose a ``CancelledError`` that lands while a command is in flight: the command
    completes and the caller carries on. A waiter whose client has gone must leave the line regardless, so after
    each Redis call a pending cancellation request of the current task is raised here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
