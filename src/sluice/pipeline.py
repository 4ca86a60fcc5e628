"""The stages every proxied request walks, in order, for one request.

``identify → admit → route → schedule → call → encode → settle``. Surfaces decode their format and drive these
stages through :class:`Gateway`; the per-request facts (who, which model and deployment, timings, usage, outcome)
accumulate on a :class:`Call`, which :meth:`Gateway.release_and_report` settles exactly once, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from sluice.accounting.service import Accounting
from sluice.cache.service import ResponseCache
from sluice.call import Call
from sluice.canonical import Usage
from sluice.config import Settings
from sluice.errors import CutAtShutdown, NotFound, Overloaded, SluiceError
from sluice.identity.authenticate import Authenticator
from sluice.identity.principal import Principal
from sluice.limits.service import Limiter, quota_headers
from sluice.observability.access import ACCESS
from sluice.observability.metrics import Metrics
from sluice.observability.tracing import Tracing
from sluice.routing.catalog import Deployment, ModelCatalog, ModelRoute
from sluice.routing.deadlines import Deadline, request_timeouts
from sluice.routing.router import Router
from sluice.scheduling.service import Scheduler
from sluice.server.exchange import Exchange

T = TypeVar("T")

log = structlog.get_logger("sluice.pipeline")


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
        self.scheduler.known = self._capacity_deployments
        self.timing_headers = settings.observability.response_headers
        self.log_prompts = settings.observability.log_prompts
        self.max_body = settings.server.max_body_bytes
        self.access_log = settings.logging.access_log
        self.limit_headers = settings.limits.headers
        self.tracing: Tracing | None = None  # set when observability.otlp_endpoint is configured

    def _capacity_deployments(self) -> list[str]:
        """The ids of the catalog's deployments that have a capacity (and so a queue)."""
        return [d.id for route in self.catalog.routes() for d in route.deployments if d.capacity is not None]

    # --- identify -------------------------------------------------------------------------------------------

    async def identify(self, ex: Exchange, call: Call) -> Principal:
        if self.tracing is not None:
            call.stages = []
            call.span = self.tracing.begin(call, ex)
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
            await self._journal(call, route, estimate)
        finally:
            if stages is not None:
                stages.append(("admit", begun, time.perf_counter()))
        if self.limit_headers and (admitted.requests is not None or admitted.tokens is not None):
            ex.response_headers.extend(quota_headers(admitted))

    async def _journal(self, call: Call, route: ModelRoute, estimate: Callable[[], tuple[int, int | None]]) -> None:
        """In the spool before the upstream is called, with what was reserved (see accounting/inflight.py)."""
        if call.principal is None:
            return
        reservation = call.reservation
        if reservation is not None:
            prompt = call.prompt_estimate or 0
            output, cost = reservation.tokens - prompt, reservation.cost_nanos
        else:
            prompt, max_tokens = estimate()
            call.prompt_estimate = call.prompt_estimate or prompt
            output = max_tokens if max_tokens is not None else self.limiter.config.default_max_tokens
            cost = self.accounting.worst_case_price(route).worst_case_nanos(prompt, output)
        try:
            await self.accounting.begin(call, prompt, output, cost)
        except (OSError, sqlite3.Error) as exc:
            log.error("call could not be journaled", usage_id=call.usage_id, error=str(exc))
            raise Overloaded(
                "The gateway could not record this request's usage; try again shortly.", code="usage_unavailable"
            ) from exc

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
            slot = await self.scheduler.acquire(
                deployment, call.principal, call.model or "", call.alive, lambda: _prompt_estimate(call)
            )
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
                    call.failed_attempt = exc  # counted here; the call's end must not count it again
                    self.metrics.attempt_failed(deployment, exc)
                raise
            call.releases += [gauge.dec, done, lambda: slot.release(call.usage)]
            if traced is not None:
                call.releases.append(lambda: traced(call.error))
            return result

        surface = call.surface
        same_format = (lambda r: r.speaks(surface)) if call.passthrough else None
        try:
            _, result = await self.router.run(route, on, call.routing, deadline, same_format)
        finally:
            opened = time.perf_counter()
            call.upstream_wait += opened - call.upstream_started
        if call.stages is not None:
            call.stages.append(("call", call.upstream_started, opened))
        return result

    # --- settle ---------------------------------------------------------------------------------------------

    async def record_and_settle(self, call: Call) -> None:
        """Write the call's usage record durably, then settle its reservation.

        Surfaces await this before the final byte of an answer, so a client never sees a complete answer whose
        record could still be lost; for every other outcome :meth:`release_and_report` does it. The record goes
        first: a crash between the two steps can leave a shared counter short by that call (its reservation then
        expires with its lease), but can never lose the record the counters are rebuilt from. The reservation is
        settled whatever happens to the record (a failed spool write, a cancellation): the in-process store has no
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

    async def settle_before_error(self, call: Call) -> None:
        """Record and settle a failed call before its error goes out.

        A client that retries as soon as it reads the error then finds its concurrency slot and reserved budget
        back, rather than racing :meth:`release_and_report`. A record that cannot be written does not change the
        error sent.
        """
        with contextlib.suppress(Overloaded):  # logged by record_and_settle
            await self.record_and_settle(call)

    async def release_and_report(self, call: Call) -> None:
        """Release what the call holds and record its outcome; runs exactly once per call."""
        call.finished = time.perf_counter()
        with contextlib.suppress(Overloaded):  # logged by record_and_settle; the caller's answer is already decided
            await self.record_and_settle(call)
        if (
            call.deployment is not None
            and call.error is not None
            and call.first_byte_at is not None
            and not isinstance(call.error, CutAtShutdown)  # the gateway's own shutdown, not the deployment's fault
        ):
            self.router.record(call.deployment, call.error, None)  # failed after the first byte: still a failure
        for release in call.releases:
            release()
        call.releases.clear()
        self.metrics.observe(call, call.finished)
        if self.tracing is not None:
            self.tracing.end(call)
            call.span = None
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


def _prompt_estimate(call: Call) -> int:
    """Sluice's own estimate of the call's prompt tokens (computed once, when first needed)."""
    if call.prompt_estimate == 0 and call.prompt_estimator is not None:
        call.prompt_estimate = call.prompt_estimator()[0]
    return call.prompt_estimate


def _fill_partial_usage(call: Call) -> None:
    """An answer cut short (client gone, upstream failed) is billed for what was generated, marked estimated."""
    if call.generated_chars == 0:
        return
    _prompt_estimate(call)
    completion = (call.generated_chars + 3) // 4
    usage = call.usage
    if usage is None:
        call.usage = Usage(call.prompt_estimate, completion, estimated=True)
    elif usage.completion_tokens == 0:
        call.usage = Usage(usage.prompt_tokens or call.prompt_estimate, completion, usage.cached_tokens, True)
