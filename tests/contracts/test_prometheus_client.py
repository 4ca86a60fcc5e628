"""Contract: the prometheus-client utilities Sluice uses beyond the metric classes (pyproject: prometheus-client <0.27).

``observability/local_metrics.py`` builds families by hand (``CounterMetricFamily``/``GaugeMetricFamily``/
``HistogramMetricFamily.add_metric``, appends ``Sample(name, labels, value)`` to ``samples`` and formats bucket
bounds with ``utils.floatToGoString``); ``observability/multiprocess.py`` relies on ``mark_process_dead`` removing the
``gauge_live*_<pid>.db`` files; ``observability/metrics.py`` scrapes a ``MultiProcessCollector``. A release that
changes any of these fails here, by name, before raising the bound in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest, values
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from sluice.observability.multiprocess import live_gauge_pids


def test_bucket_bounds_are_formatted_as_go_does() -> None:
    assert floatToGoString(0.5) == "0.5"  # type: ignore[no-untyped-call]
    assert floatToGoString(float("inf")) == "+Inf"  # type: ignore[no-untyped-call]
    assert floatToGoString(10.0) == "10.0"  # type: ignore[no-untyped-call]


def test_hand_built_families_render_with_an_appended_created_sample() -> None:
    histogram = HistogramMetricFamily("sluice_contract_seconds", "doc", labels=["route"])
    histogram.add_metric(["chat"], [("0.5", 1), ("+Inf", 3)], 2.5)
    histogram.samples.append(Sample("sluice_contract_seconds_created", {"route": "chat"}, 1700000000.0))
    counter = CounterMetricFamily("sluice_contract_calls", "doc", labels=["route"])
    counter.add_metric(["chat"], 4, created=1700000000.0)

    class Families:
        def collect(self) -> list[object]:
            return [histogram, counter]

    registry = CollectorRegistry()
    registry.register(Families())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'sluice_contract_seconds_bucket{le="0.5",route="chat"} 1.0' in text
    assert 'sluice_contract_seconds_created{route="chat"} 1.7e+09' in text
    assert 'sluice_contract_calls_total{route="chat"} 4.0' in text


def test_mark_process_dead_removes_a_workers_live_gauge_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # What importing prometheus-client with the variable set chooses (sluice serve --workers sets it first).
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    registry = CollectorRegistry()
    Gauge("sluice_contract_live", "doc", registry=None, multiprocess_mode="livesum").set(3)
    Gauge("sluice_contract_all", "doc", registry=None, multiprocess_mode="all").set(1)
    MultiProcessCollector(registry, str(tmp_path))
    assert "sluice_contract_live 3.0" in generate_latest(registry).decode()
    pid = next(iter(live_gauge_pids(tmp_path)))
    mark_process_dead(pid, str(tmp_path))  # type: ignore[no-untyped-call]
    assert live_gauge_pids(tmp_path) == set()
    assert "sluice_contract_live 3.0" not in generate_latest(registry).decode()
