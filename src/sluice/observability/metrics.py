"""Prometheus metrics: what the gateway does, what it costs, and how much time it adds.

Every metric lives on the application's own registry (no global state). With several worker processes
(``sluice serve --workers N``) prometheus-client's multiprocess mode is used — ``PROMETHEUS_MULTIPROC_DIR`` is set
by the CLI before the workers start — and ``/metrics`` aggregates every worker's values (see ``multiprocess.py``
for what that takes: live gauges of exited workers removed, per-process gauges kept current in every worker).

Label values are bounded: surfaces, endpoints, configured model and deployment names, status classes and error
kinds. Key ids, user ids and emails are never labels; a model name a client made up is reported as ``unknown``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from sluice.observability.local_metrics import HotFamilies, LocalValue
from sluice.observability.multiprocess import forget_dead_workers, forget_worker, multiprocess_dir
from sluice.version import version

if TYPE_CHECKING:
    from sluice.call import Call
    from sluice.errors import SluiceError
    from sluice.routing.catalog import Deployment

# Sub-millisecond resolution at the bottom: the gateway's own overhead is measured in tens of microseconds.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
WAIT_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class _Bound:
    requests: Callable[[], None]
    duration: Callable[[float], None]
    ttft: Callable[[float], None]
    overhead: Callable[[float], None]
    prompt: Callable[[float], None]
    completion: Callable[[float], None]
    cached: Callable[[float], None]
    cost: Callable[[float], None]


SCRAPE_ATTEMPTS = 3
Collector = Callable[[], None]
SharedCollector = Callable[[], Awaitable[None]]


def upstream_kind(error: SluiceError) -> str | None:
    """The ``kind`` label of an upstream's failure (``upstream_500``, ``truncated_stream``...), or None if it is not.

    An upstream's 429 is a rate-limit error to the caller, but still the upstream's failure (code ``upstream_429``).
    """
    code = error.code
    if error.kind.startswith("upstream"):
        return code or error.kind
    return code if code is not None and code.startswith("upstream_") else None


class _Unrecorded:
    """The in-flight gauge of a deployment when metrics are off: counts nothing."""

    def inc(self) -> None:
        pass

    def dec(self) -> None:
        pass


InFlight = Gauge | LocalValue | _Unrecorded
UNRECORDED = _Unrecorded()


class Metrics:
    def __init__(self, recording: bool = True) -> None:
        # observability.metrics: false turns off the per-request recording with the endpoint (nobody can read it).
        self.recording = recording
        self.directory = multiprocess_dir()
        multiprocess = self.directory is not None
        # In multiprocess mode values live in files; the registry used for exposition is built per scrape.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Gauges of live processes are summed across workers (in one process the mode is ignored).
        live: Literal["livesum", "all"] = "livesum" if multiprocess else "all"
        # The families every request updates: lock-free in a single process (local_metrics.py).
        hot = HotFamilies(r, multiprocess)
        self.requests = hot.counter(
            "sluice_requests",
            "Requests handled, by outcome.",
            ["surface", "endpoint", "model", "deployment", "status_class", "error_type"],
        )
        self.duration = hot.histogram(
            "sluice_request_duration_seconds",
            "Whole request duration, arrival to last byte.",
            ["surface", "model"],
            LATENCY_BUCKETS,
        )
        self.ttft = hot.histogram(
            "sluice_time_to_first_token_seconds",
            "Arrival to the first byte of the answer sent to the client.",
            ["surface", "model"],
            LATENCY_BUCKETS,
        )
        self.overhead = hot.histogram(
            "sluice_gateway_overhead_seconds",
            "Time spent in Sluice itself (excluding upstream and queue wait).",
            ["surface"],
            OVERHEAD_BUCKETS,
        )
        self.tokens = hot.counter("sluice_tokens", "Tokens, from the upstreams' usage.", ["model", "kind"])
        self.cost = hot.counter("sluice_cost", "Cost in the price table's currency.", ["model"])
        self.in_flight = hot.gauge(
            "sluice_in_flight_requests", "Requests running on each deployment.", ["deployment"], live
        )
        self.upstream_errors = Counter(
            "sluice_upstream_errors", "Upstream failures, by kind.", ["deployment", "kind"], registry=r
        )
        self.limit_rejections = Counter(
            "sluice_limit_rejections", "Requests refused by limits and budgets.", ["scope", "limit"], registry=r
        )
        self.limit_store_errors = Counter(
            "sluice_limit_store_errors",
            "Admissions or settlements that found the shared limit store down.",
            registry=r,
        )
        self.limit_settlements_deferred = Gauge(
            "sluice_limit_settlements_deferred",
            "Settlements waiting for the shared limit store to come back (replayed when it does).",
            registry=r,
            multiprocess_mode=live,
        )
        # Workers share one spool file: the worker answering a scrape counts it, and its reading is the newest.
        self.outbox_backlog = Gauge(
            "sluice_usage_outbox_backlog",
            "Usage records waiting in the local spool.",
            registry=r,
            multiprocess_mode="livemostrecent" if multiprocess else "all",
        )
        self.outbox_failures = Counter(
            "sluice_usage_outbox_failures", "Failed attempts to ship usage records to the database.", registry=r
        )
        self.queue_depth = Gauge(
            "sluice_queue_depth",
            "Requests waiting for a slot.",
            ["deployment", "priority"],
            registry=r,
            multiprocess_mode=live,
        )
        self.queue_wait = Histogram(
            "sluice_queue_wait_seconds",
            "Time requests waited for a slot.",
            ["deployment", "priority"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.background_loop_failures = Counter(
            "sluice_background_loop_failures",
            "Failed runs of a background loop (it retries at its next run).",
            ["loop"],
            registry=r,
        )
        self.retries = Counter("sluice_retries", "Upstream attempts retried.", ["deployment"], registry=r)
        self.fallbacks = Counter(
            "sluice_fallbacks", "Requests moved to another deployment or model.", ["model"], registry=r
        )
        self.circuit_state = Gauge(
            "sluice_circuit_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemax" if multiprocess else "all",
        )
        self.deployment_healthy = Gauge(
            "sluice_deployment_healthy",
            "1 while a deployment's provider passes its active health checks, 0 once it fails them.",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemin" if multiprocess else "all",
        )
        self.cache = Counter("sluice_cache_requests", "Response cache lookups.", ["result"], registry=r)
        # A gauge rather than an Info: multiprocess mode has no Info, and the sample is the same (value 1).
        self.build_info = Gauge(
            "sluice_build_info",
            "Build information (always 1).",
            ["version"],
            registry=r,
            multiprocess_mode="livemax" if multiprocess else "all",
        )
        self.build_info.labels(version()).set(1)
        self._bound: dict[tuple[str, str, str, str, int, str], _Bound] = {}
        self._in_flight: dict[str, Gauge | LocalValue] = {}
        self.collectors: list[Collector] = []
        self._shared: list[SharedCollector] = []

    @property
    def multiprocess(self) -> bool:
        return self.directory is not None

    def on_scrape(self, update: Collector) -> None:
        """Run ``update`` before each exposition: gauges of this process's own state (queue depth).

        With several workers every worker also runs them every second (see ``multiprocess.py``), so the summed
        value is current whichever worker answers the scrape.
        """
        self.collectors.append(update)

    def on_scrape_shared(self, update: SharedCollector) -> None:
        """Await ``update`` before each exposition: gauges of state the workers share (the spool backlog)."""
        self._shared.append(update)

    def refresh(self) -> None:
        for update in self.collectors:
            update()

    async def exposition(self) -> bytes:
        self.refresh()
        for update in self._shared:
            await update()
        if self.directory is None:
            return generate_latest(self.registry)
        forget_dead_workers(self.directory)
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate, path=self.directory)  # type: ignore[no-untyped-call]
        for _ in range(SCRAPE_ATTEMPTS - 1):
            try:
                return generate_latest(aggregate)
            except FileNotFoundError:
                continue  # a worker exited while its files were being read: read the directory again
        return generate_latest(aggregate)

    def close(self) -> None:
        """This worker is exiting: its live gauges leave the sums (its counters stay, as counters must)."""
        if self.directory is not None:
            forget_worker(self.directory)

    def in_flight_of(self, deployment: str) -> InFlight:
        """The in-flight gauge of one deployment (looked up once: ``labels()`` is the costly part)."""
        if not self.recording:
            return UNRECORDED
        gauge = self._in_flight.get(deployment)
        if gauge is None:
            gauge = self._in_flight[deployment] = self.in_flight.labels(deployment)
        return gauge

    def observe(self, call: Call, now: float) -> None:
        """Record one finished call (called once per call from Gateway.release_and_report)."""
        if not self.recording:
            return
        # A configured model name, even when refused before routing (limits, access); never one a client made up.
        model = call.model if call.model_known and call.model else "unknown"
        deployment = call.deployment.id if call.deployment is not None else ("cache" if call.cache_hit else "none")
        status = 499 if call.cancelled else call.status
        error = call.error.kind if call.error is not None else ("cancelled" if call.cancelled else "")
        key = (call.surface, call.endpoint, model, deployment, status, error)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = self._bind(call, model, deployment, status, error)
        bound.requests()
        bound.duration(now - call.started)
        if call.first_byte_at is not None:
            bound.ttft(call.first_byte_at - call.started)
        overhead = call.overhead(now)
        if overhead is not None:
            bound.overhead(overhead)
        usage = call.usage
        if usage is not None and call.deployment is not None:
            if usage.prompt_tokens:
                bound.prompt(usage.prompt_tokens)
            if usage.completion_tokens:
                bound.completion(usage.completion_tokens)
            if usage.cached_tokens:
                bound.cached(usage.cached_tokens)
        if call.cost_nanos:
            bound.cost(call.cost_nanos / 1e9)
        failure = call.error
        if failure is not None and failure is not call.failed_attempt and call.deployment is not None:
            # Failed after its attempt had answered (mid-stream, reading the body): not counted yet.
            kind = upstream_kind(failure)
            if kind is not None:
                self.upstream_errors.labels(deployment, kind).inc()

    def attempt_failed(self, deployment: Deployment, error: SluiceError) -> None:
        """One upstream attempt failed (retried or not): counted per deployment and kind."""
        if not self.recording:
            return
        kind = upstream_kind(error)
        if kind is not None:
            self.upstream_errors.labels(deployment.id, kind).inc()

    def _bind(self, call: Call, model: str, deployment: str, status: int, error: str) -> _Bound:
        """The labelled children one kind of call updates, looked up once (labels() is the costly part)."""
        surface = call.surface
        return _Bound(
            requests=self.requests.labels(surface, call.endpoint, model, deployment, f"{status // 100}xx", error).inc,
            duration=self.duration.labels(surface, model).observe,
            ttft=self.ttft.labels(surface, model).observe,
            overhead=self.overhead.labels(surface).observe,
            prompt=self.tokens.labels(model, "prompt").inc,
            completion=self.tokens.labels(model, "completion").inc,
            cached=self.tokens.labels(model, "cached").inc,
            cost=self.cost.labels(model).inc,
        )

    async def render(self) -> tuple[bytes, str]:
        return await self.exposition(), CONTENT_TYPE_LATEST
