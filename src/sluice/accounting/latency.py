"""The latency histogram behind the p50/p95 series: fixed buckets, counted per day in the roll-up.

Percentiles cannot be added up, but bucket counts can: the daily roll-up keeps one counter per bucket (an additive
upsert, exact under concurrent shippers), and the hourly series counts the same buckets over raw records. A
percentile is then read from the counts, interpolating linearly inside the bucket it falls in.

The buckets grow by a factor of √2 from 16 ms to about 9 minutes, so an estimate lies within its bucket: at most
41% above the bucket's lower edge, and in practice much closer because of the interpolation. Only successful
requests (status below 400) are counted: a refused or failed call's latency says nothing about the model's speed,
and the error rate is charted on its own. Changing ``BOUNDS_MS`` changes what stored counts mean: it needs a
migration that rebuilds the roll-up's histogram.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from sluice.store.models.usage import LATENCY_COLUMNS

# Upper edges (exclusive) of every bucket but the last, which is open-ended: 16 ms * 2^(k/2), k = 0..30.
BOUNDS_MS: tuple[float, ...] = tuple(round(16 * 2 ** (k / 2), 3) for k in range(31))
BUCKETS = len(BOUNDS_MS) + 1
COLUMNS = LATENCY_COLUMNS  # the roll-up's counter per bucket, in bucket order (a test holds the lengths equal)


def bucket_of(latency_ms: float) -> int:
    """The bucket a latency falls in (0 for anything under 16 ms, the last one for anything past the bounds)."""
    return bisect_right(BOUNDS_MS, latency_ms)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0 < q <= 1) of a histogram of ``BUCKETS`` counts, in ms; None when it is empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total  # the smallest value with at least this many observations at or below it
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = BOUNDS_MS[index - 1] if index > 0 else 0.0
            if index >= len(BOUNDS_MS):
                return low  # the open last bucket: report its lower edge rather than invent an upper one
            high = BOUNDS_MS[index]
            return round(low + (high - low) * (rank - seen) / count, 1)
        seen += count
    return BOUNDS_MS[-1]  # rounding left the rank a hair above the total


def add(into: list[int], counts: Sequence[int]) -> None:
    """Add one histogram's counts to another's, bucket by bucket."""
    for index, count in enumerate(counts):
        into[index] += int(count or 0)
