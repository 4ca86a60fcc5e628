"""The stages every proxied request walks, in order, for one request.

``identify → admit → route → schedule → call → encode → settle``. Surfaces decode their format and drive these
stages through :class:`Gateway`; the per-request facts (who, which model and deployment, timings, usage, outcome)
accumulate on a :class:`Call`, which :meth:`Gateway.finish` settles exactly once, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from sluice.accounting.service import Accounting
from sluice.cache.service import ResponseCache
from sluice.canonical import Usage
from sluice.config import Settings
from sluice.errors import NotFound, Overloaded, SluiceError
from sluice.identity.authenticate import Authenticator
from sluice.identity.principal import Principal
from sluice.limits.service import Limiter, quota_headers
from sluice.limits.store import Reservation
from sluice.observability.access import ACCESS
from sluice.observability.metrics import Metrics
from sluice.observability.tracing import Tracing
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.deadlines import Deadline, RequestTimeouts, request_timeouts
from sluice.routing.router import Outcome, Router
from sluice.scheduling.service import Scheduler
from sluice.server.exchange import Exchange

T = TypeVar("T")

log = structlog.get_logger("sluice.pipeline")


def _new_usage_id() -> str:
    return os.urandom(16).hex()


@dataclass(slots=True)
class Call:
    """Everything known about one proxied request; becomes its usage record and access-log line."""

    request_id: str
    surface: str
    endpoint: str
    started: float  # perf_counter at arrival
    stream: bool = False
    principal: Principal | None = None
    model: str | None = None
    model_known: bool = False  # ``model`` is a configured name (resolve found it): a bounded metric label
    response_model: str | None = None  # the model the upstream said answered (its own name, e.g. a snapshot)
    deployment: Deployment | None = None
    usage: Usage | None = None
    status: int = 200
    error: SluiceError | None = None
    cancelled: bool = False
    passthrough: bool = False
    queue_wait: float = 0.0
    queue_position: int | None = None  # place in the deployment's line at enqueue; 0: ran at once
    upstream_started: float | None = None
    first_byte_at: float | None = None  # first byte of the answer sent to the client
    finished: float | None = None
    releases: list[Callable[[], None]] = field(default_factory=list)
    deadline: asyncio.Timeout | None = None  # the whole request's deadline, set once the deployment is known
    usage_id: str = field(default_factory=_new_usage_id)  # Sluice's own id: client request ids may repeat
    arrived_at: float = field(default_factory=time.time)  # wall clock at arrival (for the record)
    upstream_wait: float = 0.0  # seconds spent waiting on the upstream (excluded from overhead)
    cache_hit: bool = False
    reservation: Reservation | None = None
    cost_nanos: int = 0
    recorded: bool = False
    prompt_estimate: int = 0  # Sluice's own estimate, used when an answer ends before the upstream's usage
    prompt_estimator: Callable[[], tuple[int, int | None]] | None = None
    timeouts: RequestTimeouts | None = None  # the request's own (shorter) deadlines, from x-sluice-timeout*
    routing: Outcome = field(default_factory=Outcome)  # attempts, retries and fallbacks for this request
    generated_chars: int = 0  # answer text seen so far, for the same purpose
    span: Any = None  # the request's trace span, when tracing is on
    stages: list[tuple[str, float, float]] | None = None  # (stage, start, end) perf_counter times, when tracing
    failed_attempt: SluiceError | None = None  # the last attempt's failure, already counted by the metrics

    def fail(self, error: SluiceError) -> None:
        self.error = error
        self.status = error.status

    def note_response_model(self, model: object) -> None:
        """Keep the model name the upstream reported answering (for traces), the first time one is seen."""
        if self.response_model is None and isinstance(model, str) and model:
            self.response_model = model

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()

    def overhead(self, now: float) -> float | None:
        """Seconds spent in Sluice itself: everything but waiting on the upstream and the queue."""
        if self.upstream_started is None:
            return None
        return max(0.0, (now - self.started) - self.upstream_wait - self.queue_wait)


class Gateway:
    """The services a request needs, and the stages that use them."""

    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        authenticator: Authenticator,
        *,
        accounting: Accounting,
        limiter: Limiter,
        metrics: Metrics,
        router: Router,
        cache: ResponseCache | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.authenticator = authenticator
        self.accounting = accounting
        self.limiter = limiter
        self.metrics = metrics
        self.cache = cache
        self.router = router
        self.scheduler = scheduler if scheduler is not None else Scheduler.local(settings.scheduling)
        self.timing_headers = settings.observability.response_headers
        self.log_prompts = settings.observability.log_prompts
        self.max_body = settings.server.max_body_bytes
        self.access_log = settings.logging.access_log
        self.limit_headers = settings.limits.headers
        self.tracing: Tracing | None = None  # set when observability.otlp_endpoint is configured

    # --- identify -------------------------------------------------------------------------------------------

    async def identify(self, ex: Exchange, call: Call) -> Principal:
        if self.tracing is not None:
            self.tracing.begin(call, ex)
        try:
            principal = await self.authenticator.identify(ex)
        finally:
            if call.stages is not None:
                call.stages.append(("identify", call.started, time.perf_counter()))
        call.principal = principal
        call.timeouts = request_timeouts(ex.header)  # checked once the caller is known: a bad value is a 400
        return principal

    # --- route ----------------------------------------------------------------------------------------------

    def resolve(self, call: Call, name: str) -> ModelRoute:
        """The model a caller asked for, if it exists and they may use it (otherwise 404 alike)."""
        stages = call.stages
        begun = time.perf_counter() if stages is not None else 0.0
        call.model = name
        route = self.catalog.get(name)
        call.model_known = route is not None
        principal = call.principal
        if stages is not None:
            stages.append(("route", begun, time.perf_counter()))
        if route is None or not route.deployments or (principal is not None and not principal.may_use(name)):
            raise NotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
        return route

    def visible_models(self, principal: Principal) -> list[ModelRoute]:
        return [r for r in self.catalog.routes() if principal.may_use(r.name)]

    # --- admit --------------------------------------------------------------------------------------------

    async def admit(
        self, ex: Exchange, call: Call, route: ModelRoute, estimate: Callable[[], tuple[int, int | None]]
    ) -> None:
        """Reserve the call's worst case against its limits and budgets (``estimate``: prompt, max output)."""
        call.prompt_estimator = estimate
        stages = call.stages
        begun = time.perf_counter() if stages is not None else 0.0
        try:
            admitted = await self.limiter.admit(call, route, estimate)
        finally:
            if stages is not None:
                stages.append(("admit", begun, time.perf_counter()))
        if self.limit_headers and (admitted.requests is not None or admitted.tokens is not None):
            ex.response_headers.extend(quota_headers(admitted))

    # --- schedule + call ------------------------------------------------------------------------------------

    async def open(self, call: Call, route: ModelRoute, attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        """Run ``attempt`` on the route's deployments, as the router orders and retries them, until one answers.

        Nothing has reached the client while this runs, so a failure here is still the caller's clean error;
        only the attempt that answered stays on the call (and is billed).
        """
        timeouts = call.timeouts
        deadline = None
        if call.deadline is not None:
            arrived = asyncio.get_running_loop().time() - (time.perf_counter() - call.started)
            deadline = Deadline(call.deadline, arrived, timeouts.total if timeouts is not None else None)
        call.upstream_started = time.perf_counter()

        async def on(deployment: Deployment) -> T:
            call.deployment = deployment
            queued = time.perf_counter() if call.stages is not None else 0.0
            slot = await self.scheduler.acquire(deployment, call.principal, call.model or "")
            call.queue_position = slot.position
            call.queue_wait += slot.waited
            call.upstream_wait -= slot.waited  # open() times the whole attempt as upstream wait; the queue is not
            gauge = self.metrics.in_flight_of(deployment.id)
            gauge.inc()
            done = self.router.started(deployment)
            traced = self.tracing.attempt(call, deployment, queued) if self.tracing is not None else None
            try:
                # A request's shorter deadlines reach the provider on the deployment the attempt is given.
                result = await attempt(deployment if timeouts is None else timeouts.applied_to(deployment))
            except BaseException as exc:
                gauge.dec()
                done()
                slot.release()
                if traced is not None:
                    traced(exc)
                if isinstance(exc, SluiceError):
                    self.metrics.attempt_failed(call, deployment, exc)
                raise
            call.releases += [gauge.dec, done, lambda: slot.release(call.usage)]
            if traced is not None:
                call.releases.append(lambda: traced(call.error))
            return result

        surface = call.surface
        same_format = (
            (lambda r: all(d.provider.wire_format == surface for d in r.deployments)) if call.passthrough else None
        )
        try:
            _, result = await self.router.run(route, on, call.routing, deadline, same_format)
        finally:
            opened = time.perf_counter()
            call.upstream_wait += opened - call.upstream_started
        if call.stages is not None:
            call.stages.append(("call", call.upstream_started, opened))
        return result

    # --- settle ---------------------------------------------------------------------------------------------

    async def complete(self, call: Call) -> None:
        """Write the call's usage record durably, then settle its reservation.

        Surfaces await this before the final byte of an answer, so a client never sees a complete answer whose
        record could still be lost; for every other outcome :meth:`finish` does it. The record goes first: a
        crash between the two steps can leave a shared counter short by that call (its reservation then expires
        with its lease), but can never lose the record the counters are rebuilt from. The reservation is settled
        whatever happens to the record (a failed spool write, a cancellation): the in-process store has no
        leases, so a skipped settlement would hold its concurrency slot and reserved budget for good. A limit
        store that is down defers the settlement instead of failing (``Limiter.settle``).
        """
        if call.recorded or call.principal is None:
            return
        call.recorded = True
        _fill_partial_usage(call)
        cost = self.accounting.cost_of(call)
        call.cost_nanos = cost
        try:
            await self.accounting.record(call, cost, time.perf_counter())
        except OSError as exc:
            log.error("usage record could not be written", usage_id=call.usage_id, error=str(exc))
            raise Overloaded(
                "The gateway could not record this request's usage; try again shortly.", code="usage_unavailable"
            ) from exc
        finally:
            await self.limiter.settle(call, cost)

    async def conclude(self, call: Call) -> None:
        """Record and settle a failed call before its error goes out.

        A client that retries as soon as it reads the error then finds its concurrency slot and reserved budget
        back, rather than racing :meth:`finish`. A record that cannot be written does not change the error sent.
        """
        with contextlib.suppress(Overloaded):  # logged by complete
            await self.complete(call)

    async def finish(self, call: Call) -> None:
        """Release what the call holds and record its outcome; runs exactly once per call."""
        call.finished = time.perf_counter()
        with contextlib.suppress(Overloaded):  # logged by complete; the caller's answer is already decided
            await self.complete(call)
        if call.deployment is not None and call.error is not None and call.first_byte_at is not None:
            self.router.record(call.deployment, call.error, None)  # failed after the first byte: still a failure
        for release in call.releases:
            release()
        call.releases.clear()
        self.metrics.observe(call, call.finished)
        if self.tracing is not None:
            self.tracing.end(call)
        if self.access_log and ACCESS.enabled:
            self._log(call)

    def response_headers(self, call: Call) -> list[tuple[bytes, bytes]]:
        """Headers describing the call so far, added as its response starts (``observability.response_headers``)."""
        overhead = call.overhead(time.perf_counter())
        headers: list[tuple[bytes, bytes]] = []
        if overhead is not None:
            headers.append((b"x-sluice-overhead-ms", b"%.3f" % (overhead * 1000)))
            headers.append((b"x-sluice-upstream-ms", b"%.3f" % (call.upstream_wait * 1000)))
        if call.deployment is not None:
            headers.append((b"x-sluice-deployment", call.deployment.id.encode()))
        if call.queue_position is not None:
            headers.append((b"x-sluice-queue-position", b"%d" % call.queue_position))
            headers.append((b"x-sluice-queue-wait-ms", b"%.3f" % (call.queue_wait * 1000)))
        return headers

    def _log(self, call: Call) -> None:
        """The access line: the usage record's fields under the record's names (ids and labels, never secrets)."""
        finished = call.finished or time.perf_counter()
        usage = call.usage
        principal = call.principal
        first_byte = call.first_byte_at
        overhead = call.overhead(finished)
        ACCESS.write(
            {
                "request_id": call.request_id,
                "usage_id": call.usage_id,
                "surface": call.surface,
                "endpoint": call.endpoint,
                "model": call.model,
                "deployment": call.deployment.id if call.deployment is not None else None,
                "principal": principal.label if principal is not None else None,
                "principal_kind": principal.kind if principal is not None else "anonymous",
                "key_id": principal.key_id if principal is not None else None,
                "user_id": principal.user_id if principal is not None else None,
                "workspace_id": principal.workspace_id if principal is not None else None,
                "stream": call.stream,
                "status": 499 if call.cancelled else call.status,
                "error_type": call.error.kind if call.error is not None else ("cancelled" if call.cancelled else None),
                "prompt_tokens": usage.prompt_tokens if usage is not None else 0,
                "completion_tokens": usage.completion_tokens if usage is not None else 0,
                "cached_tokens": usage.cached_tokens if usage is not None else 0,
                "estimated": usage is not None and usage.estimated,
                "cost_nanos": call.cost_nanos,
                "cache_hit": call.cache_hit,
                "latency_ms": round((finished - call.started) * 1000, 3),
                "ttft_ms": round((first_byte - call.started) * 1000, 3) if first_byte is not None else None,
                "queue_wait_ms": round(call.queue_wait * 1000, 3),
                "upstream_ms": round(call.upstream_wait * 1000, 3) if call.upstream_started is not None else None,
                "overhead_ms": round(overhead * 1000, 3) if overhead is not None else None,
                "attempts": call.routing.attempts,
                "fallback_from": call.routing.fallback_from,
            }
        )


def _fill_partial_usage(call: Call) -> None:
    """An answer cut short (client gone, upstream failed) is billed for what was generated, marked estimated."""
    if call.generated_chars == 0:
        return
    if call.prompt_estimate == 0 and call.prompt_estimator is not None:
        call.prompt_estimate = call.prompt_estimator()[0]
    completion = (call.generated_chars + 3) // 4
    usage = call.usage
    if usage is None:
        call.usage = Usage(call.prompt_estimate, completion, estimated=True)
    elif usage.completion_tokens == 0:
        call.usage = Usage(usage.prompt_tokens or call.prompt_estimate, completion, usage.cached_tokens, True)
