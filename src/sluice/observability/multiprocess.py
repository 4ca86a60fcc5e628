"""What prometheus-client's multiprocess mode needs from Sluice with ``sluice serve --workers N``.

Each worker writes its values to files named after its pid in ``PROMETHEUS_MULTIPROC_DIR``; whichever worker
answers a scrape sums them all. That leaves three things to Sluice:

- A worker that exits must take its *live* gauges (in flight, queue depth, circuit state, health, build info) out
  of the sums: :func:`forget_worker` runs at its shutdown. A worker killed outright (``kill -9``, the OOM killer)
  runs nothing, so every scrape also forgets the live gauges of pids that no longer exist
  (:func:`forget_dead_workers`). Counters and histograms of exited workers stay: they are cumulative.
- Gauges of a process's own state (its queue depth) are set before each scrape, but only in the worker that
  answers it; every worker therefore also refreshes them every :data:`REFRESH_SECONDS` (``Services`` runs the loop),
  or a sum would mix one fresh reading with the others' stale ones.
- State the workers share (the one spool file) is read once per scrape, by the answering worker, into a gauge
  whose newest reading wins (``livemostrecent``), rather than summed N times.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

REFRESH_SECONDS = 1.0

# gauge_livesum_1234.db, gauge_livemostrecent_1234.db, ...: the files mark_process_dead removes.
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def forget_worker(directory: str, pid: int | None = None) -> None:
    """Remove a worker's live gauges from the sums (this process's when ``pid`` is None)."""
    # Another worker's scrape may have removed a file first; whatever is left goes at the next scrape.
    with contextlib.suppress(FileNotFoundError):
        mark_process_dead(os.getpid() if pid is None else pid, directory)  # type: ignore[no-untyped-call]


def forget_dead_workers(directory: str) -> list[int]:
    """Forget the live gauges of every worker that no longer runs; returns their pids."""
    dead = sorted(pid for pid in live_gauge_pids(directory) if not _running(pid))
    for pid in dead:
        forget_worker(directory, pid)
    return dead


def live_gauge_pids(directory: str | Path) -> set[int]:
    """The pids that have live-gauge files in ``directory`` (the running workers, once the dead are forgotten)."""
    return {int(m.group(1)) for m in map(_LIVE_FILE.fullmatch, os.listdir(directory)) if m is not None}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    # A worker that died but is not yet reaped by its parent still answers signal 0, as a zombie.
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): signal 0 is all there is
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"  # "pid (name) state ...": the state after the name
