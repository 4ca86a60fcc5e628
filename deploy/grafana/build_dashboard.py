"""Writes deploy/grafana/sluice-dashboard.json: ``python deploy/grafana/build_dashboard.py``.

The dashboard is generated so that its panels stay consistent (one datasource variable, one grid) and a test can
check every PromQL expression against the metric names ``/metrics`` exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("sluice-dashboard.json")
DS = {"type": "prometheus", "uid": "${datasource}"}


def _quantiles(metric: str, quantiles: tuple[float, ...]) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[$__rate_interval])))", f"p{int(q * 100)}")
        for q in quantiles
    ]


# (title, unit, [(PromQL, legend)])
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Requests per second by status",
        "reqps",
        [("sum by (status_class) (rate(sluice_requests_total[$__rate_interval]))", "{{status_class}}")],
    ),
    (
        "Errors per second by type",
        "reqps",
        [('sum by (error_type) (rate(sluice_requests_total{error_type!=""}[$__rate_interval]))', "{{error_type}}")],
    ),
    (
        "Request latency p50 / p95 / p99",
        "s",
        _quantiles("sluice_request_duration_seconds", (0.5, 0.95, 0.99)),
    ),
    (
        "Gateway overhead p50 / p99 (Sluice itself)",
        "s",
        _quantiles("sluice_gateway_overhead_seconds", (0.5, 0.99)),
    ),
    (
        "Time to first token p50 / p95 by model",
        "s",
        [
            (
                "histogram_quantile(0.5, sum by (le, model) (rate(sluice_time_to_first_token_seconds_bucket"
                "[$__rate_interval])))",
                "p50 {{model}}",
            ),
            (
                "histogram_quantile(0.95, sum by (le, model) (rate(sluice_time_to_first_token_seconds_bucket"
                "[$__rate_interval])))",
                "p95 {{model}}",
            ),
        ],
    ),
    (
        "Tokens per second by model",
        "short",
        [("sum by (model, kind) (rate(sluice_tokens_total[$__rate_interval]))", "{{model}} {{kind}}")],
    ),
    (
        "Cost per hour by model",
        "currencyUSD",
        [("sum by (model) (rate(sluice_cost_total[$__rate_interval])) * 3600", "{{model}}")],
    ),
    ("In flight per deployment", "short", [("sum by (deployment) (sluice_in_flight_requests)", "{{deployment}}")]),
    (
        "Queue depth by deployment and class",
        "short",
        [("sum by (deployment, priority) (sluice_queue_depth)", "{{deployment}} {{priority}}")],
    ),
    (
        "Queue wait p95 by class",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, priority) "
                "(rate(sluice_queue_wait_seconds_bucket[$__rate_interval])))",
                "{{priority}}",
            )
        ],
    ),
    (
        "Upstream errors by kind",
        "short",
        [
            (
                "sum by (deployment, kind) (rate(sluice_upstream_errors_total[$__rate_interval]))",
                "{{deployment}} {{kind}}",
            )
        ],
    ),
    (
        "Circuit state (0 closed, 1 half-open, 2 open) and health",
        "short",
        [
            ("max by (deployment) (sluice_circuit_state)", "circuit {{deployment}}"),
            ("min by (deployment) (sluice_deployment_healthy)", "healthy {{deployment}}"),
        ],
    ),
    (
        "Retries and fallbacks",
        "short",
        [
            ("sum(rate(sluice_retries_total[$__rate_interval]))", "retries"),
            ("sum(rate(sluice_fallbacks_total[$__rate_interval]))", "fallbacks"),
        ],
    ),
    (
        "Limit rejections by scope",
        "short",
        [("sum by (scope, limit) (rate(sluice_limit_rejections_total[$__rate_interval]))", "{{scope}} {{limit}}")],
    ),
    (
        "Cache hit ratio",
        "percentunit",
        [
            (
                'sum(rate(sluice_cache_requests_total{result="hit"}[$__rate_interval])) / '
                "clamp_min(sum(rate(sluice_cache_requests_total[$__rate_interval])), 1e-9)",
                "hit ratio",
            )
        ],
    ),
    (
        "Usage outbox backlog and failures",
        "short",
        [
            ("sum(sluice_usage_outbox_backlog)", "backlog"),
            ("sum(rate(sluice_usage_outbox_failures_total[$__rate_interval]))", "failures/s"),
        ],
    ),
]


def panel(index: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DS}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "title": "Sluice",
        "uid": "sluice-gateway",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["sluice", "llm-gateway"],
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
