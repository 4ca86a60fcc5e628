"""The single-process metric families expose exactly what prometheus-client's own classes expose for the same
updates (bucket edges included), under the same names and labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.samples import Sample

from sluice.observability.local_metrics import HotFamilies, LocalCounter, LocalHistogram
from sluice.observability.metrics import OVERHEAD_BUCKETS

LABELS = st.sampled_from([("openai",), ("anthropic",), ("ollama",)])
AMOUNTS = st.one_of(st.sampled_from([0.0, *OVERHEAD_BUCKETS, 2.0]), st.floats(0, 5, allow_nan=False))


def samples(registry: CollectorRegistry) -> list[Sample]:
    """Every sample but the creation times (which differ by construction)."""
    found = [s for family in registry.collect() for s in family.samples if not s.name.endswith("_created")]
    return sorted(found, key=lambda s: (s.name, sorted(s.labels.items())))


def created(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in registry.collect()
        for s in family.samples
        if s.name.endswith("_created")
    }


@given(st.lists(st.tuples(LABELS, AMOUNTS), max_size=40))
def test_histograms_match_prometheus_clients_for_any_observations(observed: list[tuple[tuple[str], float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h_seconds", "doc", ["surface"], buckets=OVERHEAD_BUCKETS, registry=theirs)
    local = HotFamilies(ours, multiprocess=False).histogram("h_seconds", "doc", ["surface"], OVERHEAD_BUCKETS)
    assert isinstance(local, LocalHistogram)
    for labels, amount in observed:
        reference.labels(*labels).observe(amount)
        local.labels(*labels).observe(amount)
    assert samples(ours) == samples(theirs)
    assert created(ours) == created(theirs)


@given(st.lists(st.tuples(LABELS, st.floats(0, 1e6, allow_nan=False)), max_size=40))
def test_counters_and_gauges_match_prometheus_clients(updates: list[tuple[tuple[str], float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("c", "doc", ["surface"], registry=theirs)
    gauge = Gauge("g", "doc", ["surface"], registry=theirs)
    hot = HotFamilies(ours, multiprocess=False)
    local_counter, local_gauge = hot.counter("c", "doc", ["surface"]), hot.gauge("g", "doc", ["surface"], "all")
    assert isinstance(local_counter, LocalCounter) and isinstance(local_gauge, LocalCounter)
    for labels, amount in updates:
        counter.labels(*labels).inc(amount)
        local_counter.labels(*labels).inc(amount)
        gauge.labels(*labels).inc()
        local_gauge.labels(*labels).inc()
        gauge.labels(*labels).dec(0.5)
        local_gauge.labels(*labels).dec(0.5)
    assert samples(ours) == samples(theirs)
    assert created(ours) == created(theirs)


def test_multiprocess_mode_keeps_prometheus_clients_classes() -> None:
    hot = HotFamilies(CollectorRegistry(), multiprocess=True)
    assert isinstance(hot.counter("c", "doc", ["a"]), Counter)
    assert isinstance(hot.histogram("h", "doc", ["a"], (0.1, 1.0)), Histogram)
    assert isinstance(hot.gauge("g", "doc", ["a"], "livesum"), Gauge)
