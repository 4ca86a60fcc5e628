"""Routing strategies: in which order a model's deployments are tried for one request (pure functions).

Each strategy returns every candidate, best first; the router tries them in that order until one answers
(retries and fallbacks move down the list). Randomness comes from the ``rng`` passed in, so tests are exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

Strategy = Literal["ordered", "weighted", "least_busy", "lowest_latency"]
T = TypeVar("T")


def weighted_order(items: Sequence[T], weight: Callable[[T], float], rng: random.Random) -> list[T]:
    """A random order where each position is drawn in proportion to weight (without replacement).

    Uses the Efraimidis-Spirakis keys u^(1/w): sorting by them draws a weighted sample without replacement.
    """
    keyed = [(rng.random() ** (1.0 / max(weight(item), 1e-9)), i) for i, item in enumerate(items)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed]


def ordered(items: Sequence[T], tier: Callable[[T], int], weight: Callable[[T], float], rng: random.Random) -> list[T]:
    """Priority tiers, lowest ``order`` first; within a tier, spread by weight."""
    tiers: dict[int, list[T]] = {}
    for item in items:
        tiers.setdefault(tier(item), []).append(item)
    out: list[T] = []
    for level in sorted(tiers):
        out += weighted_order(tiers[level], weight, rng)
    return out


def least_busy(items: Sequence[T], in_flight: Callable[[T], int], rng: random.Random) -> list[T]:
    """Fewest requests in flight first; ties broken at random so equal deployments share the load."""
    shuffled = list(items)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=in_flight)


def lowest_latency(items: Sequence[T], latency: Callable[[T], float | None], rng: random.Random) -> list[T]:
    """Power of two choices on the latency average: sample two, lead with the faster; the rest by latency.

    Sampling two instead of always taking the fastest keeps a little traffic on the others, so their averages
    stay current and a herd does not pile onto one deployment. Unmeasured deployments count as fastest, so they
    get measured.
    """
    if len(items) <= 1:
        return list(items)

    def score(item: T) -> float:
        value = latency(item)
        return -1.0 if value is None else value

    first, second = rng.sample(list(items), 2)
    lead = first if score(first) <= score(second) else second
    rest = sorted((item for item in items if item is not lead), key=score)
    return [lead, *rest]
