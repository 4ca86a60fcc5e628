"""The local durable spool: usage records land here first, before the client sees its answer complete.

One thread owns the SQLite file (WAL mode) and its single connection. Records are appended in groups: the thread
takes every record waiting, inserts them in one transaction and then resolves each caller's future, so under load
many requests share one commit, and at low load a record is written as soon as it arrives. A committed WAL
transaction is in the operating system's hands, so a process killed with ``kill -9`` loses nothing committed.

The shipper's reads and deletes run on the same thread and connection (queued behind the writes), so nothing
opens connections per batch and the event loop never touches SQLite. The synchronous ``read_unshipped``,
``delete`` and ``backlog`` are for tools and tests working on a spool no server is running.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sluice.store.private import private_database

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    key_id TEXT,
    user_id TEXT,
    workspace_id TEXT,
    cost_nanos INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""
# Calls in flight (accounting/inflight.py): written in the same transactions as the records, so always present.
INFLIGHT_SCHEMA = "CREATE TABLE IF NOT EXISTS inflight (id TEXT PRIMARY KEY, owner TEXT NOT NULL, body BLOB NOT NULL)"
INSERT = "INSERT OR IGNORE INTO spool VALUES (?, ?, ?, ?, ?, ?, ?)"
SCOPE_COLUMNS = ("key_id", "user_id", "workspace_id")

_STOP = object()


@dataclass(frozen=True, slots=True)
class SpoolRow:
    id: str
    body: dict[str, Any]


class _Write:
    __slots__ = ("future", "loop", "row", "sql")

    def __init__(
        self,
        row: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
        sql: str = INSERT,
    ):
        self.row = row
        self.loop = loop
        self.future = future
        self.sql = sql


class _Task:
    __slots__ = ("future", "loop", "work")

    def __init__(
        self, work: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ):
        self.work = work
        self.loop = loop
        self.future = future


def connect(path: Path) -> sqlite3.Connection:
    private_database(path)  # owner-only, like everything in the data directory
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)  # a reader may find a new, empty file
    conn.execute(INFLIGHT_SCHEMA)
    return conn


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.pending = 0  # records written and not yet shipped (kept in memory for the backlog gauge)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        self.pending = int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
        conn.close()
        self._thread = threading.Thread(target=self._serve, name="sluice-spool", daemon=True)
        self._thread.start()

    async def append(self, record: dict[str, Any]) -> None:
        """Return once the record is committed to the spool file."""
        if self._closed:
            raise RuntimeError("spool is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        row = (
            record["id"],
            record["created_ts"],
            record.get("key_id"),
            record.get("user_id"),
            record.get("workspace_id"),
            record["cost_nanos"],
            orjson.dumps(record),
        )
        self._queue.put(_Write(row, loop, future))
        try:
            await asyncio.shield(future)  # a cancelled caller does not un-write its record
        except asyncio.CancelledError:
            future.add_done_callback(_retrieve)
            raise
        self.pending += 1

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the spool's own thread and connection, after the writes queued before it."""
        if self._thread is None:
            raise RuntimeError("spool is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Task(work, loop, future))
        return await future

    async def write(self, sql: str, row: tuple[Any, ...]) -> None:
        """One statement, committed with the writes around it in one transaction; returns once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Write(row, loop, future, sql))
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_retrieve)
            raise

    def write_later(self, sql: str, row: tuple[Any, ...]) -> None:
        """Like :meth:`write`, without waiting (committed with the next batch; a failure is dropped)."""
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._queue.put(_Write(row, loop, future, sql))

    def _serve(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                item = self._queue.get()
                writes: list[_Write] = []
                while isinstance(item, _Write):
                    writes.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = None
                if writes:
                    self._commit(conn, writes)
                if isinstance(item, _Task):
                    self._perform(conn, item)
                elif item is _STOP:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        error: BaseException | None = None
        try:
            conn.execute("BEGIN")
            # In order, consecutive writes of one statement together (usage records, journal rows, their removal).
            for sql, writes in itertools.groupby(batch, key=lambda w: w.sql):
                conn.executemany(sql, [w.row for w in writes])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for write in batch:
            by_loop.setdefault(write.loop, []).append(write.future)
        for loop, futures in by_loop.items():
            # One wake-up per loop per batch, not one per record.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, futures, error)

    @staticmethod
    def _perform(conn: sqlite3.Connection, task: _Task) -> None:
        try:
            result, error = task.work(conn), None
        except sqlite3.Error as exc:
            result, error = None, exc
        if not task.loop.is_closed():
            task.loop.call_soon_threadsafe(_settle, task.future, result, error)

    # --- what the shipper asks of a running spool --------------------------------------------------------------

    async def unshipped(self, limit: int) -> list[SpoolRow]:
        return await self.run(lambda conn: _select(conn, limit))

    async def remove(self, ids: list[str]) -> None:
        await self.run(lambda conn: _delete(conn, ids))
        self.pending = max(0, self.pending - len(ids))

    async def scope_costs(self, column: str, value: str, start: float, end: float) -> list[tuple[str, int]]:
        """(id, cost) of spooled records of one scope in a time range (for budget spend after a restart)."""
        if column not in SCOPE_COLUMNS:
            raise ValueError(column)
        return await self.run(lambda conn: _costs(conn, column, value, start, end))

    # --- the same, synchronously, for a spool no server is running (tools, tests) ------------------------------

    def read_unshipped(self, limit: int) -> list[SpoolRow]:
        return self._offline(lambda conn: _select(conn, limit))

    def delete(self, ids: Iterable[str]) -> None:
        self._offline(lambda conn: _delete(conn, list(ids)))

    def pending_cost(self, column: str, value: str, start: float, end: float) -> list[tuple[str, int]]:
        if column not in SCOPE_COLUMNS:
            raise ValueError(column)
        return self._offline(lambda conn: _costs(conn, column, value, start, end))

    def backlog(self) -> int:
        return self._offline(lambda conn: int(conn.execute("SELECT count(*) FROM spool").fetchone()[0]))

    def _offline(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = connect(self.path)
        try:
            return work(conn)
        finally:
            conn.close()

    def queue(self, name: str) -> SpoolQueue:
        """A keyed queue of blobs kept in this file beside the records (another room's durable backlog)."""
        return SpoolQueue(self, name)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def close(self) -> None:
        """Finish every queued write and task, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None


class SpoolQueue:
    """Rows of (id, order, body) in a table of the spool file, written and read on the spool's own thread, so they
    are as durable as the usage records and never touch the event loop. Ids are unique: adding one twice keeps the
    first."""

    def __init__(self, spool: Spool, name: str) -> None:
        if not name.isidentifier():
            raise ValueError(f"not a table name: {name!r}")
        self.spool = spool
        self.name = name

    async def open(self) -> int:
        """Create the table if needed; the number of rows waiting in it."""
        table = self.name

        def work(conn: sqlite3.Connection) -> int:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, ended REAL NOT NULL, body BLOB)")
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

        return await self.spool.run(work)

    async def add(self, row_id: str, order: float, body: bytes) -> int:
        """Keep one row; the number added (0: that id was already kept)."""
        statement = f"INSERT OR IGNORE INTO {self.name} VALUES (?, ?, ?)"
        return int(await self.spool.run(lambda conn: conn.execute(statement, (row_id, order, body)).rowcount))

    async def oldest(self, limit: int) -> list[tuple[str, bytes]]:
        """Up to ``limit`` rows, lowest order first."""
        statement = f"SELECT id, body FROM {self.name} ORDER BY ended LIMIT ?"
        rows: list[tuple[str, bytes]] = await self.spool.run(
            lambda conn: [(r[0], r[1]) for r in conn.execute(statement, (limit,)).fetchall()]
        )
        return rows

    async def remove(self, ids: list[str]) -> int:
        """Drop rows in one transaction; the number of rows left."""
        table = self.name

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN")
            conn.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])
            conn.execute("COMMIT")
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

        return await self.spool.run(work)


def _select(conn: sqlite3.Connection, limit: int) -> list[SpoolRow]:
    # Oldest first by rowid, the order of the commits: ``created`` has no index, and sorting the whole spool by it
    # for every batch cost more than the rest of the read under load.
    rows = conn.execute("SELECT id, body FROM spool ORDER BY rowid LIMIT ?", (limit,)).fetchall()
    return [SpoolRow(r[0], orjson.loads(r[1])) for r in rows]


def _delete(conn: sqlite3.Connection, ids: list[str]) -> None:
    conn.execute("BEGIN")
    conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
    conn.execute("COMMIT")


def _costs(conn: sqlite3.Connection, column: str, value: str, start: float, end: float) -> list[tuple[str, int]]:
    query = f"SELECT id, cost_nanos FROM spool WHERE {column} = ? AND created >= ? AND created < ?"
    return [(r[0], int(r[1])) for r in conn.execute(query, (value, start, end)).fetchall()]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(OSError(f"usage spool write failed: {error}"))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(OSError(f"usage spool access failed: {error}"))
