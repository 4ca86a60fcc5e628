"""Background loops survive any exception of their work; repeated warnings are written once per interval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice.observability.log_throttle import LogThrottle
from sluice.observability.loops import BackgroundLoops, LoopState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


class Flaky:
    """Fails with each exception given, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


async def test_a_failing_iteration_is_counted_and_the_next_one_runs() -> None:
    failed: list[str] = []
    loops = BackgroundLoops(on_failure=failed.append)
    state = LoopState(every=1.0)
    work = Flaky(ConnectionRefusedError(), RuntimeError("a bug"), KeyError("x"))
    for _ in range(4):
        await loops.run_once("refresh", state, work)
    assert work.calls == 4
    assert failed == ["refresh"] * 3
    assert state.failures == 3 and state.consecutive_failures == 0 and state.last_success is not None


async def test_report_shows_a_failing_loop_until_it_succeeds() -> None:
    clock = Clock()
    loops = BackgroundLoops(clock=clock)
    state = LoopState(every=1.0)
    loops.states["refresh"] = state
    await loops.run_once("refresh", state, Flaky(OSError()))
    report = loops.report()["refresh"]
    assert report["status"] == "failing" and report["consecutive_failures"] == 1 and report["last_error"] == "OSError"
    await loops.run_once("refresh", state, Flaky())
    clock.now += 3
    report = loops.report()["refresh"]
    assert report["status"] == "ok" and report["failures"] == 1 and report["seconds_since_success"] == 3.0


async def test_cancellation_still_ends_an_iteration() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    loops = BackgroundLoops()
    with pytest.raises(asyncio.CancelledError):
        await loops.run_once("refresh", LoopState(every=1.0), cancelled)


def test_a_repeated_warning_is_written_once_per_interval_with_the_count() -> None:
    clock = Clock()
    recorder = Recorder()
    throttle = LogThrottle(recorder, interval=30, clock=clock)
    assert throttle.warning("redis", "redis down")
    for _ in range(5):
        clock.now += 1
        assert not throttle.warning("redis", "redis down")
    assert throttle.warning("other", "other down")  # topics are independent
    clock.now += 30
    assert throttle.warning("redis", "redis down")
    assert recorder.lines == [("redis down", {}), ("other down", {}), ("redis down", {"repeated": 5})]


def test_after_recovery_the_next_failure_is_written_at_once() -> None:
    clock = Clock()
    recorder = Recorder()
    throttle = LogThrottle(recorder, interval=30, clock=clock)
    throttle.warning("redis", "redis down")
    throttle.recovered("redis")
    clock.now += 1
    assert throttle.warning("redis", "redis down")
    assert len(recorder.lines) == 2
