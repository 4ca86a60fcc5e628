"""Deadlines for one request: its own shorter timeouts, and the one deadline every attempt fits inside.

A request may shorten, never lengthen, any of the deployment's timeouts with headers::

    x-sluice-timeout: 30              total: from arrival to the last byte (queue, retries and backoffs included)
    x-sluice-timeout-connect: 2       connecting to the upstream
    x-sluice-timeout-first-byte: 10   request sent → response headers, and a stream's first chunk
    x-sluice-timeout-idle: 5          between a stream's chunks once the first has arrived

Each attempt uses the field-wise minimum of the request's values and its deployment's. A value that is not a
positive number of seconds is the caller's mistake and answered with a 400 naming the header.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from sluice.config import Timeouts
from sluice.errors import InvalidRequest
from sluice.providers.base import Target
from sluice.routing.catalog import Deployment

TOTAL_HEADER = b"x-sluice-timeout"
HEADERS: tuple[tuple[bytes, str], ...] = (
    (TOTAL_HEADER, "total"),
    (b"x-sluice-timeout-connect", "connect"),
    (b"x-sluice-timeout-first-byte", "first_byte"),
    (b"x-sluice-timeout-idle", "idle"),
)


@dataclass(frozen=True, slots=True)
class RequestTimeouts:
    """The deadlines a request asked for (None: the deployment's own)."""

    connect: float | None = None
    first_byte: float | None = None
    idle: float | None = None
    total: float | None = None

    def narrow(self, timeouts: Timeouts) -> Timeouts:
        """The field-wise minimum with a deployment's timeouts (``timeouts`` itself when none is shorter)."""
        shorter = {
            name: mine
            for name in ("connect", "first_byte", "idle", "total")
            if (mine := getattr(self, name)) is not None and mine < getattr(timeouts, name)
        }
        return timeouts.model_copy(update=shorter) if shorter else timeouts

    def applied_to(self, deployment: Deployment) -> Deployment:
        """The deployment as this request's attempt on it sees it: the same, with the shorter deadlines."""
        target = deployment.target
        timeouts = self.narrow(target.timeouts)
        if timeouts is target.timeouts:
            return deployment
        return replace(deployment, target=Target(target.model, timeouts))


def request_timeouts(header: Callable[[bytes], bytes | None]) -> RequestTimeouts | None:
    """The request's own timeouts from its headers (None when it sets none); a bad value is a 400."""
    values: dict[str, float] = {}
    for name, field in HEADERS:
        raw = header(name)
        if raw is not None:
            values[field] = _seconds(name, raw)
    return RequestTimeouts(**values) if values else None


def _seconds(name: bytes, raw: bytes) -> float:
    header = name.decode()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequest(
            f"Invalid value for the header '{header}': expected a positive number of seconds.",
            param=header,
            code="invalid_timeout",
        )
    return seconds


class Deadline:
    """When a request must be finished: arrival + the serving deployment's ``total``, or the request's own.

    One asyncio timeout covers the whole request (queue wait, attempts, backoffs, the answer). Before each
    attempt it is moved to that deployment's limit, so every deployment's own ``total`` holds, measured from the
    request's arrival, and a request's shorter ``total`` holds for all of them.
    """

    __slots__ = ("_arrived", "_cap", "_timer")

    def __init__(self, timer: asyncio.Timeout, arrived: float, cap: float | None) -> None:
        self._timer = timer
        self._arrived = arrived  # on the event loop's clock
        self._cap = cap

    def when(self, deployment: Deployment) -> float:
        """The loop time by which a request served by ``deployment`` must be done."""
        total = deployment.target.timeouts.total
        cap = self._cap
        return self._arrived + (total if cap is None or total < cap else cap)

    def fits(self, deployment: Deployment, wait: float) -> bool:
        """Whether waiting ``wait`` seconds still leaves time for an attempt on ``deployment``."""
        return asyncio.get_running_loop().time() + wait < self.when(deployment)

    def enter(self, deployment: Deployment) -> None:
        """Hold the request to ``deployment``'s limit from now on."""
        self._timer.reschedule(self.when(deployment))
