"""Background loops that outlive any failure of the work they repeat.

A loop that refreshes limits, prices and rules or records key use must keep running through a database or Redis
outage of any length, and after it: an exception that escaped a loop once ended it for the life of the process,
and changes made elsewhere never reached that replica again. Each iteration here is an outermost boundary: any
exception is counted (``sluice_background_loop_failures_total{loop=...}``), logged at most once per interval, and
the loop carries on at its next tick. ``/health/ready`` shows each loop's state (``checks.loops``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from sluice.observability.log_throttle import LogThrottle

log = structlog.get_logger("sluice.loops")

AFTER_CANCEL_SECONDS = 1.0  # a cancelled iteration must end this soon (then it is left behind)


@dataclass
class LoopState:
    every: float
    runs: int = 0
    failures: int = 0
    failing_since: float | None = None  # monotonic time of the first failure in the current run of failures
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success: float | None = None

    def report(self, now: float) -> dict[str, Any]:
        status = "ok" if self.consecutive_failures == 0 else "failing"
        report: dict[str, Any] = {"status": status, "every_seconds": self.every, "runs": self.runs}
        report["failures"] = self.failures
        if self.consecutive_failures:
            report["consecutive_failures"] = self.consecutive_failures
            report["last_error"] = self.last_error
        if self.last_success is not None:
            report["seconds_since_success"] = round(now - self.last_success, 1)
        return report


class BackgroundLoops:
    """Named periodic loops; :meth:`stop` ends them between iterations, within a bounded time."""

    def __init__(
        self,
        on_failure: Callable[[str], None] = lambda _name: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_failure = on_failure
        self._clock = clock
        self._warnings = LogThrottle(log)
        self._stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, LoopState] = {}

    def every(self, name: str, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` every ``seconds`` (the first time after ``seconds``) until :meth:`stop`."""
        self.states[name] = LoopState(every=seconds)
        self._tasks[name] = asyncio.create_task(self._run(name, seconds, work), name=f"sluice-{name}")

    async def _run(self, name: str, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        state = self.states[name]
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
                return
            await self.run_once(name, state, work)

    async def run_once(self, name: str, state: LoopState, work: Callable[[], Awaitable[None]]) -> None:
        """One iteration: never raises (the loop's boundary), except on cancellation."""
        state.runs += 1
        try:
            await work()
        except Exception as exc:  # noqa: BLE001 - the loop's outermost boundary: counted, logged, retried next tick
            state.failures += 1
            state.consecutive_failures += 1
            state.last_error = type(exc).__name__
            if state.failing_since is None:
                state.failing_since = self._clock()
            self._on_failure(name)
            self._warnings.warning(
                name, "background loop failed; retrying at its next run", loop=name, error=type(exc).__name__
            )
        else:
            if state.consecutive_failures:
                log.info("background loop recovered", loop=name, failures=state.consecutive_failures)
                self._warnings.recovered(name)
            state.consecutive_failures = 0
            state.failing_since = None
            state.last_success = self._clock()

    def report(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {name: state.report(now) for name, state in self.states.items()}

    async def stop(self, grace: float) -> None:
        """Let each loop finish its current iteration for up to ``grace`` seconds, then cancel what is left.

        Iterations are not interrupted when they end in time: a database query cancelled mid-flight would leave
        its SQLite worker thread answering a loop that is gone.
        """
        self._stopping.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if not tasks:
            return
        _done, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=AFTER_CANCEL_SECONDS)
            log.warning("background loops cancelled at shutdown", loops=sorted(t.get_name() for t in late))
