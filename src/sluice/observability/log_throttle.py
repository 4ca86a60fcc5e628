"""Warnings that repeat while a dependency is down, written once per interval instead of once per event.

A Redis or database outage fails every request or every loop iteration the same way; one line per failure floods
the log without telling more. The first failure is logged at once; later ones within ``interval`` are counted and
reported (``repeated=N``) with the next line written. Metrics still count every one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

DEFAULT_INTERVAL_SECONDS = 30.0


class LogThrottle:
    """At most one warning per ``interval`` seconds per topic."""

    def __init__(
        self,
        logger: Any,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log: structlog.stdlib.BoundLogger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, topic: str, event: str, **fields: Any) -> bool:
        """Log ``event`` unless ``topic`` was logged less than ``interval`` ago; True if it was written."""
        now = self._clock()
        last = self._last.get(topic)
        if last is not None and now - last < self.interval:
            self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
            return False
        self._last[topic] = now
        repeated = self._suppressed.pop(topic, 0)
        if repeated:
            fields["repeated"] = repeated
        self._log.warning(event, **fields)
        return True

    def recovered(self, topic: str) -> None:
        """The failure is over: the next one is logged at once."""
        self._last.pop(topic, None)
        self._suppressed.pop(topic, None)
