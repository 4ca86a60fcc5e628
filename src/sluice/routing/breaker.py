"""A circuit breaker per deployment: stop sending traffic to an upstream that keeps failing, probe it, recover.

Closed: everything passes; the breaker opens after ``consecutive_failures`` failures in a row, or when at least
``minimum_calls`` of the last ``window`` calls ended and ``failure_ratio`` of them failed. Open: nothing passes
until ``open_seconds`` have gone by; then one request goes through as a half-open probe. A probe that succeeds
closes the breaker; one that fails opens it again.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from sluice.config import BreakerConfig

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    __slots__ = ("_config", "_outcomes", "_probing", "consecutive", "opened_at", "state")

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._outcomes: deque[bool] = deque(maxlen=config.window)
        self.consecutive = 0
        self.state: State = "closed"
        self.opened_at = 0.0
        self._probing = False

    def allows(self, now: float) -> bool:
        """Whether a request may go to this deployment now (claiming the single half-open probe if so)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now - self.opened_at < self._config.open_seconds:
                return False
            self.state = "half_open"
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def available(self, now: float) -> bool:
        """Like :meth:`allows`, without claiming the probe (for planning and snapshots)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now - self.opened_at >= self._config.open_seconds
        return not self._probing

    def record(self, success: bool, now: float) -> None:
        self._outcomes.append(success)
        if self.state == "half_open":
            self._probing = False
            if success:
                self._close()
            else:
                self._open(now)
            return
        if success:
            self.consecutive = 0
            return
        self.consecutive += 1
        failures = self._outcomes.count(False)
        ratio_tripped = len(self._outcomes) >= self._config.minimum_calls and (
            failures / len(self._outcomes) >= self._config.failure_ratio
        )
        if self.consecutive >= self._config.consecutive_failures or ratio_tripped:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self._outcomes.clear()

    def _close(self) -> None:
        self.state = "closed"
        self.consecutive = 0
        self._outcomes.clear()

    def release_probe(self) -> None:
        """A half-open probe that ended without an outcome (cancelled): let the next request probe."""
        self._probing = False
