"""OpenTelemetry traces (optional extra ``sluice[otel]``): one span per request, a child span per upstream
attempt, the pipeline stages as child spans, and the GenAI semantic-convention attributes.

Off unless ``observability.otlp_endpoint`` is set; then spans are exported over OTLP/HTTP in batches off the hot
path. An incoming ``traceparent`` is honoured (the request's span joins the caller's trace) and each upstream
attempt carries its own ``traceparent`` to the upstream (set here in a context variable that the HTTP client reads).

The stage spans are rebuilt when the request ends from ``Call.stages``: (stage, start, end) readings the pipeline
takes only while tracing is on (``Call.stages`` is None otherwise, so an untraced request pays one ``is None``
test per stage). Only each attempt's span is live, because its ``traceparent`` must reach the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sluice.errors import ConfigError

if TYPE_CHECKING:
    from sluice.call import Call
    from sluice.routing.catalog import Deployment
    from sluice.server.exchange import Exchange

# The traceparent for the upstream request being made in this task (read by providers/http.py).
UPSTREAM_TRACEPARENT: ContextVar[str | None] = ContextVar("sluice_upstream_traceparent", default=None)

_GEN_AI_SYSTEM = {
    "openai": "openai",
    "azure": "az.ai.openai",
    "anthropic": "anthropic",
    "ollama": "ollama",
    "gemini": "gcp.gemini",
    "mock": "sluice.mock",
}
_OPERATION = {
    "chat": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "messages": "chat",
    "generate": "text_completion",
    "embed": "embeddings",
}


# The stage spans, in pipeline order; "decode" is the gap between identify and route (reading, parsing the body),
# "encode" from the upstream's answer to the end of the response, "settle" the release and record after it.
STAGE_SPANS = ("identify", "decode", "route", "admit", "call", "encode", "settle")


def _wall_ns(call: Call, perf: float) -> int:
    """A perf_counter reading of this call as wall-clock nanoseconds.

    Every span of a request, live (the attempts) or rebuilt (the stages), is timed from the same anchor (its
    arrival on both clocks), so spans that touch stay in order; reading the two clocks afresh for each
    conversion would jitter their boundaries by nanoseconds, and mixing in the exporter's own clock by more.
    """
    return int((call.arrived_at + (perf - call.started)) * 1e9)


class Tracing:
    def __init__(self, endpoint: str, service_name: str, exporter: Any = None) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            raise ConfigError(
                ["observability.otlp_endpoint: tracing needs the otel extra (pip install 'sluice[otel]')"]
            ) from None
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
        self._tracer = self._provider.get_tracer("sluice")
        self._propagator = TraceContextTextMapPropagator()
        self._kind = SpanKind
        self._status = (Status, StatusCode)
        self._in_context = set_span_in_context

    def begin(self, call: Call, ex: Exchange) -> Any:
        """Open the request's span (joining the caller's trace when it sent ``traceparent``) and return it."""
        carrier = {}
        for name in (b"traceparent", b"tracestate"):
            value = ex.header(name)
            if value is not None:
                carrier[name.decode()] = value.decode("latin-1")
        context = self._propagator.extract(carrier) if carrier else None
        return self._tracer.start_span(
            f"{call.surface} {call.endpoint}",
            context=context,
            kind=self._kind.SERVER,
            start_time=_wall_ns(call, call.started),
            attributes={"http.request.method": ex.method, "url.path": ex.path, "sluice.request_id": call.request_id},
        )

    def attempt(self, call: Call, deployment: Deployment, queued: float) -> Callable[[BaseException | None], None]:
        """Start an upstream attempt's span and expose its traceparent; returns what ends it.

        ``queued``: when the attempt asked the scheduler for a slot (its wait becomes a ``sluice.schedule`` span).
        """
        if call.span is None:
            return lambda _error: None
        parent = self._in_context(call.span)
        now = _wall_ns(call, time.perf_counter())
        if deployment.capacity is not None:
            schedule = self._tracer.start_span(
                "sluice.schedule",
                context=parent,
                start_time=_wall_ns(call, queued),
                attributes={"sluice.deployment": deployment.id, "sluice.queue_position": call.queue_position or 0},
            )
            schedule.end(end_time=now)
        operation = _OPERATION.get(call.endpoint, call.endpoint)
        span = self._tracer.start_span(
            f"{operation} {deployment.target.model}",
            context=parent,
            kind=self._kind.CLIENT,
            start_time=now,
            attributes={
                "gen_ai.system": _GEN_AI_SYSTEM.get(deployment.provider.kind, deployment.provider.kind),
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": deployment.target.model,
                "sluice.deployment": deployment.id,
            },
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        UPSTREAM_TRACEPARENT.set(carrier.get("traceparent"))

        def end(error: BaseException | None) -> None:
            UPSTREAM_TRACEPARENT.set(None)
            if error is not None:
                span.set_attribute("error.type", getattr(error, "kind", type(error).__name__))
                status, code = self._status
                span.set_status(status(code.ERROR, getattr(error, "message", None)))
            if error is None:
                # What the upstream said answered (e.g. a dated snapshot), else the model Sluice asked for.
                span.set_attribute("gen_ai.response.model", call.response_model or deployment.target.model)
                usage = call.usage
                if usage is not None:
                    span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                    span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            span.end(end_time=_wall_ns(call, time.perf_counter()))

        return end

    def end(self, call: Call) -> None:
        """Close the request's span with its outcome and the stage spans rebuilt from the call's timings."""
        span = call.span
        if span is None:
            return
        now = time.perf_counter()
        context = self._in_context(span)
        for name, start, end in stage_times(call, now):
            stage = self._tracer.start_span(f"sluice.{name}", context=context, start_time=_wall_ns(call, start))
            stage.end(end_time=_wall_ns(call, end))
        attributes: dict[str, Any] = {
            "http.response.status_code": 499 if call.cancelled else call.status,
            "sluice.cache_hit": call.cache_hit,
            "sluice.attempts": call.routing.attempts,
        }
        if call.model:
            attributes["gen_ai.request.model"] = call.model
        if call.deployment is not None and call.error is None:
            attributes["gen_ai.response.model"] = call.response_model or call.deployment.target.model
        if call.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = call.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = call.usage.completion_tokens
        if call.principal is not None and call.principal.workspace_id:
            attributes["sluice.workspace"] = call.principal.workspace_id
        span.set_attributes(attributes)
        if call.error is not None:
            span.set_attribute("error.type", call.error.kind)
            status, code = self._status
            span.set_status(status(code.ERROR, call.error.message))
        span.end(end_time=_wall_ns(call, now))

    def shutdown(self) -> None:
        self._provider.shutdown()


def stage_times(call: Call, now: float) -> list[tuple[str, float, float]]:
    """(stage, start, end) of each stage the call went through, in order, from the readings it took."""
    taken = {name: (start, end) for name, start, end in call.stages or ()}
    identify, route, opened = taken.get("identify"), taken.get("route"), taken.get("call")
    if identify is not None and route is not None:
        taken["decode"] = (identify[1], route[0])
    if opened is not None and call.finished is not None:
        taken["encode"] = (opened[1], call.finished)
    if call.finished is not None:
        taken["settle"] = (call.finished, now)
    return [(name, *taken[name]) for name in STAGE_SPANS if name in taken]


def build_tracing(endpoint: str | None, service_name: str) -> Tracing | None:
    return Tracing(endpoint, service_name) if endpoint else None
