"""deploy/: the Grafana dashboard is current and valid, and every name its PromQL uses is a sample /metrics exports."""

from __future__ import annotations

import json
import re
import runpy
import time
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeOpenAI, Fault
from tests.support.keys import NewKey, create_key
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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


def test_every_dashboard_metric_is_a_sample_name_metrics_exports(tmp_path: Path) -> None:
    """Exact names: a query for ``sluice_requests`` (no ``_total``) or a histogram without ``_bucket`` fails."""
    dashboard = json.loads((DEPLOY / "grafana" / "sluice-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bsluice_[a-z_]+", target["expr"])
    }
    with FakeOpenAI() as upstream:
        config = {
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": "k"}],
            "models": [
                {
                    "name": "m",
                    "cache": True,
                    "price": {"input": 1.0, "output": 2.0},
                    "fallbacks": [{"model": "b", "on": ["upstream_error"]}],
                    "deployments": [{"provider": "up", "model": "gpt-4o-mini", "capacity": 4}],
                },
                {"name": "b", "deployments": [{"provider": "up", "model": "other"}]},
            ],
            "routing": {"max_attempts": 2},  # one budget per request: m's deployment, then the fallback b
            "breaker": {"consecutive_failures": 1, "open_seconds": 600},
            "health": {"interval_seconds": 60},
            "limits": {"defaults": {"key": {"rpm": 1}}},
        }
        with SluiceServer(make_settings(tmp_path, config)) as server:
            master = {"authorization": f"Bearer {MASTER_KEY}"}
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(2):  # a miss, then a hit
                httpx.post(f"{server.url}/v1/chat/completions", headers=master, json=body, timeout=30)
            upstream.enqueue(Fault("status", status=500))  # m fails, its circuit opens, b answers (a fallback)
            failing = {**body, "messages": [{"role": "user", "content": "fail"}]}
            assert httpx.post(f"{server.url}/v1/chat/completions", headers=master, json=failing).status_code == 200
            key: NewKey = server.call(create_key(server.services.db, "limited"))
            limited = {"authorization": f"Bearer {key.secret}"}
            url = f"{server.url}/v1/chat/completions"
            statuses = [httpx.post(url, headers=limited, json={**body, "model": "b"}).status_code for _ in range(2)]
            assert statuses == [200, 429]
            deadline = time.monotonic() + 30
            exported = sample_names(server)
            while not used <= exported and time.monotonic() < deadline:  # the first health check may still run
                time.sleep(0.1)
                exported = sample_names(server)
    missing = sorted(used - exported)
    assert missing == [], f"dashboard queries name samples /metrics does not export: {missing}"


def sample_names(server: SluiceServer) -> set[str]:
    exposition = httpx.get(f"{server.url}/metrics", timeout=30).text
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}
