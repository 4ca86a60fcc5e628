"""The per-request record: everything known about one proxied request, as the pipeline's stages learn it.

A leaf: it imports nothing that imports it back (the types it names are imported for type checking only), so every
stage and observer can name :class:`Call` without joining an import circle. The pipeline and the stages it runs
write it; observability (metrics, tracing, the access log) only reads it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.routing.router import Outcome

if TYPE_CHECKING:
    from sluice.canonical import Usage
    from sluice.errors import SluiceError
    from sluice.identity.principal import Principal
    from sluice.limits.store import Reservation
    from sluice.routing.catalog import Deployment
    from sluice.routing.deadlines import RequestTimeouts


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
    alive: Callable[[], bool] | None = None  # whether the client is still connected (asked at a queue grant)

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
