"""deploy/: the Grafana dashboard is current and valid, and every metric its PromQL uses is one /metrics exports."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeOpenAI, Fault
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


def _base_name(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


def test_dashboard_is_generated_from_its_builder() -> None:
    builder = runpy.run_path(str(DEPLOY / "grafana" / "build_dashboard.py"))
    stored = json.loads((DEPLOY / "grafana" / "sluice-dashboard.json").read_text())
    assert stored == builder["dashboard"](), "run: python deploy/grafana/build_dashboard.py"
    assert stored["panels"] and all(p["targets"] for p in stored["panels"])
    ids = [p["id"] for p in stored["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_config_parses() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"]


def test_every_dashboard_metric_is_exported(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "sluice-dashboard.json").read_text())
    used = {
        _base_name(name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bsluice_[a-z_]+", target["expr"])
    }
    with FakeOpenAI() as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}],
            "models": [{"name": "m", "cache": True, "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}],
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            headers = {"authorization": f"Bearer {MASTER_KEY}"}
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(2):
                httpx.post(f"{server.url}/v1/chat/completions", headers=headers, json=body, timeout=30)
            upstream.enqueue(Fault("status", status=500), Fault("status", status=500), Fault("status", status=500))
            httpx.post(
                f"{server.url}/v1/chat/completions",
                headers=headers,
                json={**body, "messages": [{"role": "user", "content": "fail"}]},
                timeout=30,
            )
            exposition = httpx.get(f"{server.url}/metrics", timeout=30).text
    families = {_base_name(f.name) for f in text_string_to_metric_families(exposition)}
    missing = sorted(used - families)
    assert missing == [], f"dashboard uses metrics /metrics does not export: {missing}"
