"""`sluice serve --workers N`: one port, several processes, one set of metrics and limits."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY
from tests.support.services import REDIS_URL, require_redis


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    require_redis()
    config = {"redis_url": REDIS_URL, "limits": {"backend": "redis", "redis_prefix": "t-" + secrets.token_hex(4)}}
    gateway = SluiceProcess(tmp_path / "gw", config, args=("--workers", "2")).start()
    try:
        body = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(40):
            # A new connection each time, so the kernel spreads them over both workers.
            with httpx.Client(headers={"Authorization": f"Bearer {MASTER_KEY}"}) as http:
                resp = http.post(f"{gateway.url}/v1/chat/completions", json=body)
                assert resp.status_code == 200
        text = httpx.get(f"{gateway.url}/metrics").text
        total = sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "sluice_requests_total" and s.labels.get("endpoint") == "chat"
        )
        assert total == 40
    finally:
        gateway.stop()


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    gateway = SluiceProcess(tmp_path / "gw", {}, args=("--workers", "2"))
    try:
        gateway.start()
        raise AssertionError("several workers without Redis must not start")
    except RuntimeError as exc:
        assert "through Redis" in str(exc)
