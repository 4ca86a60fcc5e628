"""Credential lookups a request waits on only up to a deadline.

A key or session the cache does not hold (or holds stale) is read from the database by one task per credential,
shared by every request presenting it at the same time. The task is not the request's: a request gives up after
``Database.request_deadline`` (then it uses what the cache knew, or gets 503), while the task runs on to its own
bounded end (connect, pool and statement timeouts, :mod:`sluice.store.db`) and fills the cache if the database
answers, so the credential works again as soon as the database is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import structlog

from sluice.errors import Overloaded
from sluice.observability.log_throttle import LogThrottle
from sluice.store.db import LOOKUP_ERRORS

log = structlog.get_logger("sluice.lookups")

# While the database is unavailable, a credential already trusted is served from the cache and re-read this often.
OUTAGE_RECHECK_SECONDS = 5.0
RETRY_AFTER_SECONDS = 5

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class StoreUnavailable(Exception):
    """The database did not answer the lookup (refused, failed, or not within the request's deadline)."""


class SharedLookups(Generic[K, V]):
    """At most one running lookup per credential; requests wait on it up to ``deadline`` seconds."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._pending: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warnings = LogThrottle(log)  # one line per interval while the database is down, not one per key

    def running(self, key: K) -> bool:
        return key in self._pending

    async def wait(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """``load()``'s result (started now unless it already runs); :class:`StoreUnavailable` if the store is not."""
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            task = asyncio.create_task(self._run(key, future, load), name="sluice-credential-lookup")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout(self.deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            raise StoreUnavailable(f"no answer within {self.deadline:g} s") from None

    async def _run(self, key: K, future: asyncio.Future[V], load: Callable[[], Awaitable[V]]) -> None:
        try:
            result = await load()
        except LOOKUP_ERRORS as exc:
            self._warnings.warning(
                "database-down", "credential lookup failed: the database is unavailable", error=type(exc).__name__
            )
            future.set_exception(StoreUnavailable(type(exc).__name__))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests, whose error handling reports it
            future.set_exception(exc)
        else:
            future.set_result(result)
        finally:
            self._pending.pop(key, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: nobody may be waiting any more (they gave up at the deadline)

    async def close(self) -> None:
        """Cancel lookups still running (a hung database at shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)


def auth_unavailable(message: str) -> Overloaded:
    """The 503 an unknown credential gets while the database cannot verify it (each surface renders it)."""
    return Overloaded(message, code="auth_unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
