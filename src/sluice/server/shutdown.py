"""Shutdown in bounded steps: a hung database or Redis can slow a replica's exit, never stop it.

Each step runs as a task given ``seconds``; one that overruns is cancelled, and the database's connections are cut
(``Database.abort``) so that what waits on a hung server (a query, or the rollback its cancellation starts) ends
at once instead of at the statement timeout. A step that still does not end is left behind and the next one runs.
Usage records a step could not ship stay in the spool and are shipped at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger("sluice.shutdown")

AFTER_CANCEL_SECONDS = 1.0
# Once the whole shutdown's budget is spent, each remaining step still gets this long (closing local files).
LAST_STEP_SECONDS = 0.5


class Shutdown:
    def __init__(self, cut_connections: Callable[[], int], budget: float) -> None:
        self._cut_connections = cut_connections
        self._deadline = time.monotonic() + budget
        self.overran: list[str] = []

    async def step(self, name: str, work: Coroutine[Any, Any, Any], seconds: float) -> bool:
        """Run ``work`` for at most ``seconds`` (plus a second to end once cancelled), less once the budget is
        spent; True if it finished in time."""
        started = time.monotonic()
        seconds = min(seconds, max(self._deadline - started, LAST_STEP_SECONDS))
        task = asyncio.ensure_future(work)
        task.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("shutdown step failed", step=name, error=type(task.exception()).__name__)
            return True
        self.overran.append(name)
        task.cancel()
        cut = self._cut_connections()
        await asyncio.wait({task}, timeout=AFTER_CANCEL_SECONDS)
        log.warning(
            "shutdown step overran its bound; cancelled",
            step=name,
            bound_seconds=seconds,
            took_seconds=round(time.monotonic() - started, 1),
            database_connections_cut=cut,
            ended=task.done(),
        )
        return False


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a late step's outcome seen (it was logged as overrunning; its own error would only be noise)."""
    if not task.cancelled():
        task.exception()
