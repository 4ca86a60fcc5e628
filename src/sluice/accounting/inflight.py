"""Calls in flight, journaled in the spool file before their upstream is called.

A replica killed with ``kill -9`` used to leave no trace of the calls it was serving: the upstream served (and
billed) them, nobody recorded them. Each admitted call now leaves a row here, committed before the upstream is
called, holding the record it would get if it never finished: its estimated usage (the prompt estimate and the
output reserved for it, at the worst-case price), ``estimated`` true, status 500 and error type ``orphaned``. The
call's real record replaces it: the row is dropped when that record is in the spool, and since both carry the call's
usage id, a crash between the two writes still leaves one record (the spool and the database ignore a second).

At start, rows of a process that is gone (another worker still running keeps its own) are turned into records.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from typing import Any

import orjson
import structlog

from sluice.accounting.spool import Spool

log = structlog.get_logger("sluice.inflight")

INSERT = "INSERT OR IGNORE INTO inflight VALUES (?, ?, ?)"
DELETE = "DELETE FROM inflight WHERE id = ?"
ORPHANED = "orphaned"


class InFlightJournal:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex}"

    async def recover(self) -> int:
        """Record the calls a process that is gone left in flight; how many there were."""

        def work(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = conn.execute("SELECT id, owner, body FROM inflight").fetchall()
            return [(row[0], row[2]) for row in rows if _gone(row[1], self.owner)]

        orphans = await self.spool.run(work)
        for usage_id, body in orphans:
            await self.spool.append(orjson.loads(body))
            self.end(usage_id)
        if orphans:
            log.warning("calls cut by a crash recorded with estimated usage", count=len(orphans))
        return len(orphans)

    async def begin(self, record: dict[str, Any]) -> None:
        """Journal a call about to be sent upstream (returns once committed to the spool file, batched with the
        other calls' writes)."""
        await self.spool.write(INSERT, (record["id"], self.owner, orjson.dumps(record)))

    def end(self, usage_id: str) -> None:
        """The call's own record is in the spool (queued behind it, so committed with or before this): drop the
        journal row."""
        self.spool.write_later(DELETE, (usage_id,))


def orphan_record(record: dict[str, Any], prompt_tokens: int, output_tokens: int, cost_nanos: int) -> dict[str, Any]:
    """The record a call gets if its process dies before it ends: what was reserved for it, marked estimated."""
    now = time.time()
    return {
        **record,
        "finished_ts": now,
        "status": 500,
        "error_type": ORPHANED,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "estimated": True,
        "cost_nanos": cost_nanos,
    }


def _gone(owner: str, me: str) -> bool:
    """True if the process that wrote a row is no longer running (a pid reused by this process counts as gone)."""
    if owner == me:
        return False
    pid = int(owner.split(":", 1)[0])
    if pid == os.getpid():
        return True  # a restarted container often gets its old pid back
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
