"""Garbage-collector settings for a long-running server process.

Start-up leaves about 150,000 long-lived objects (SQLAlchemy, pydantic, FastAPI, prometheus-client). Every
generation-2 collection walked all of them, pausing the event loop for tens of milliseconds and putting a long
tail on latency under load (measured: p99 at 64 connections 71 ms → 27 ms after freezing). Freezing them moves
them out of the collector's reach; a larger generation-0 threshold lets the many short-lived per-request objects
die in fewer, equally cheap collections.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Call once, after start-up has built everything that lives as long as the process."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
