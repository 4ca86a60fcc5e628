"""Coalescing the limit scripts: the calls made while one batch is on the wire go out together in the next.

Every admission and settlement is one script call, and each call through redis-py on its own costs the proxy
process far more CPU (connection checkout, one write, one wake-up per reply) than Redis spends running it. Under
load most calls find a batch already in flight, so they queue here and leave in one pipelined round trip; a call
on an idle gateway waits one turn of the event loop. Each script stays atomic on its own: a batch is a pipeline,
not a transaction, so one call's answer never depends on another's in the same batch.

Every call waits at most ``deadline`` seconds for its answer, counted from its own start: a hung Redis (or a batch
stuck ahead of it) makes it fail with :class:`redis.exceptions.TimeoutError` in that time, never later. A batch
on the wire is abandoned after the same deadline and its connection closed, so the calls queued behind it go out
on another connection rather than wait for the socket timeout.

Scripts are sent by SHA; one that Redis does not know (first use, or after a restart or ``SCRIPT FLUSH``) is
loaded and its calls sent once more. A connection error fails every call of the batch with that error.

A batch is written as one packed buffer on a connection of the client's pool and its replies read back in order:
redis-py's own pipeline encodes every argument through several layers and costs about twice as much per call,
which at a few thousand requests a second is a visible share of the gateway's CPU. Connecting, authentication,
TLS, timeouts and reply parsing stay redis-py's.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

MAX_BATCH = 256
DEFAULT_DEADLINE_SECONDS = 0.5


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> LuaScript:
        return cls(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


@dataclass(frozen=True)
class _Pending:
    script: LuaScript
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]


class ScriptBatcher:
    def __init__(self, redis: Redis, max_batch: int = MAX_BATCH, deadline: float = DEFAULT_DEADLINE_SECONDS) -> None:
        self._redis = redis
        self.deadline = deadline
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._sender: asyncio.Task[None] | None = None
        self.batches = 0  # round trips sent (for tests and the curious)

    async def call(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` with ``keys`` and ``args`` in the next batch and return its reply (or raise its error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(script, keys, args, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        try:
            async with asyncio.timeout(self.deadline):
                return await asyncio.shield(future)
        except TimeoutError:
            if not future.done():
                future.cancel()  # still queued: it is not sent; on the wire: its answer is dropped
            raise RedisTimeout(f"no answer from Redis within {self.deadline:g} s") from None

    async def _send(self) -> None:
        try:
            await asyncio.sleep(0)  # the calls made in this turn of the loop join the first batch
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                await self._deliver(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody may wait for ever
            for pending in self._pending:
                _fail(pending, exc)
            self._pending = []
            raise
        finally:
            self._sender = None

    async def _deliver(self, batch: list[_Pending]) -> None:
        batch = [p for p in batch if not p.future.done()]  # callers that gave up while queued
        if not batch:
            return
        try:
            async with asyncio.timeout(self.deadline):
                replies = await self._execute(batch)
            unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if unknown:
                for script in {batch[i].script for i in unknown}:
                    async with asyncio.timeout(self.deadline):
                        await self._redis.script_load(script.source)
                async with asyncio.timeout(self.deadline):
                    again = await self._execute([batch[i] for i in unknown])
                for i, reply in zip(unknown, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:
            for pending in batch:
                _fail(pending, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for pending, reply in zip(batch, replies, strict=True):
            if pending.future.done():
                continue  # its caller gave up; the script ran all the same
            if isinstance(reply, Exception):
                pending.future.set_exception(reply)
            else:
                pending.future.set_result(reply)

    async def _execute(self, batch: list[_Pending]) -> list[Any]:
        """Send the batch in one write and read one reply per call (an error reply is returned, not raised)."""
        self.batches += 1
        packed = b"".join(_evalsha(p.script, p.keys, p.args) for p in batch)
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for _ in batch:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as refused:
                    replies.append(refused)
        except BaseException:
            await connection.disconnect()  # replies may be left unread on it: it must not serve another batch
            raise
        finally:
            await pool.release(connection)
        return replies


def _evalsha(script: LuaScript, keys: list[str], args: list[Any]) -> bytes:
    """One ``EVALSHA`` in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"EVALSHA", script.sha.encode(), str(len(keys)).encode(), *map(_encode, keys), *map(_encode, args)]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()  # as redis-py sends numbers: floats at full precision
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def _fail(pending: _Pending, exc: BaseException) -> None:
    if pending.future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        pending.future.cancel()
    else:
        pending.future.set_exception(exc)
