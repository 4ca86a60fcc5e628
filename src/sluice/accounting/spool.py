"""The local durable spool: usage records land here first, before the client sees its answer complete.

A single writer thread owns the SQLite file (WAL mode). Records are appended in groups: the thread takes every
record waiting, inserts them in one transaction and then resolves each caller's future, so under load many
requests share one commit, and at low load a record is written as soon as it arrives. A committed WAL transaction
is in the operating system's hands, so a process killed with ``kill -9`` loses nothing that was committed.

The shipper (``outbox.py``) reads unshipped rows, writes them to the main database and then deletes them here;
rows stay until the database has them, so a database outage or a crash only delays shipping.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

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

_STOP = object()


@dataclass(frozen=True, slots=True)
class SpoolRow:
    id: str
    body: dict[str, Any]


class _Write:
    __slots__ = ("future", "loop", "row")

    def __init__(self, row: tuple[Any, ...], loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]):
        self.row = row
        self.loop = loop
        self.future = future


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SCHEMA)  # readers (the CLI, a shipper before the writer ran) may find a new, empty file
        return conn

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connect().close()
        self._thread = threading.Thread(target=self._write_forever, name="sluice-spool", daemon=True)
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

    def _write_forever(self) -> None:
        conn = self._connect()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._commit(conn, batch)
                        return
                    batch.append(item)
                self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        error: BaseException | None = None
        try:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR IGNORE INTO spool VALUES (?, ?, ?, ?, ?, ?, ?)", [w.row for w in batch])
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

    # --- reading and housekeeping (called from worker threads via asyncio.to_thread) --------------------------

    def read_unshipped(self, limit: int) -> list[SpoolRow]:
        conn = self._connect()
        try:
            rows = conn.execute("SELECT id, body FROM spool ORDER BY created LIMIT ?", (limit,)).fetchall()
        finally:
            conn.close()
        return [SpoolRow(r[0], orjson.loads(r[1])) for r in rows]

    def delete(self, ids: Iterable[str]) -> None:
        conn = self._connect()
        try:
            conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
        finally:
            conn.close()

    def pending_cost(self, column: str, value: str, start: float, end: float) -> list[tuple[str, int]]:
        """(id, cost) of spooled records of one scope in a time range (for budget spend after a restart)."""
        if column not in ("key_id", "user_id", "workspace_id"):
            raise ValueError(column)
        conn = self._connect()
        try:
            query = f"SELECT id, cost_nanos FROM spool WHERE {column} = ? AND created >= ? AND created < ?"
            return [(r[0], int(r[1])) for r in conn.execute(query, (value, start, end)).fetchall()]
        finally:
            conn.close()

    def backlog(self) -> int:
        conn = self._connect()
        try:
            return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
        finally:
            conn.close()

    def close(self) -> None:
        """Finish every queued write, then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None


def _retrieve(future: asyncio.Future[None]) -> None:
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
