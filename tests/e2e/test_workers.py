"""`sluice serve --workers N`: one port, several processes, one set of metrics and limits."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sluice.observability.multiprocess import live_gauge_pids
from sluice.version import version
from tests.fakes import FakeOpenAI, Fault
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY
from tests.support.services import REDIS_URL, require_redis

WORKERS = ("--workers", "2")
WORKERS_START = 120.0  # each worker imports the whole gateway, both at once: slow on a busy machine
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}
# The database refuses usage records, so every record stays in the (shared) spool and the backlog is known.
REFUSE_USAGE = (
    "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
)


def shared_config(data_dir: Path, **extra: Any) -> dict[str, Any]:
    prefix = "t-" + secrets.token_hex(4)
    limits = {"backend": "redis", "redis_prefix": prefix}
    shared = {"limits": limits, "scheduling": {"backend": "redis", "prefix": prefix + "-sched"}}
    return {"data_dir": str(data_dir), "redis_url": REDIS_URL, **shared, **extra}


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def total(url: str, name: str) -> float:
    return sum(v for _labels, v in samples(url, name))


def post_on_new_connections(url: str, count: int) -> None:
    for _ in range(count):
        # A new connection each time, so the kernel spreads them over the workers.
        with httpx.Client(headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
            assert http.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200


def test_metrics_add_up_across_workers(tmp_path: Path) -> None:
    require_redis()
    gateway = SluiceProcess(
        tmp_path / "gw", shared_config(tmp_path / "data"), args=WORKERS, start_timeout=WORKERS_START
    ).start()
    try:
        post_on_new_connections(gateway.url, 40)
        requests = samples(gateway.url, "sluice_requests_total")
        assert sum(v for labels, v in requests if labels.get("endpoint") == "chat") == 40
        # The build info survives multiprocess mode (an Info metric would not): one sample, not one per worker.
        assert samples(gateway.url, "sluice_build_info") == [({"version": version()}, 1.0)]
    finally:
        gateway.stop()


def test_a_shared_spool_backlog_is_counted_once_not_once_per_worker(tmp_path: Path) -> None:
    require_redis()
    config = shared_config(tmp_path / "data")
    single = SluiceProcess(tmp_path / "gw", config).start()
    database = sqlite3.connect(tmp_path / "data" / "sluice.db")
    try:
        database.execute(REFUSE_USAGE)
        database.commit()
        post_on_new_connections(single.url, 3)
    finally:
        database.close()
        single.stop()  # the records cannot be shipped: they stay in the spool for the next start
    workers = SluiceProcess(tmp_path / "gw", config, args=WORKERS, start_timeout=WORKERS_START).start()
    try:
        # Each worker starts on the same spool file; the backlog is that file's, once.
        assert total(workers.url, "sluice_usage_outbox_backlog") == 3
        post_on_new_connections(workers.url, 4)
        assert total(workers.url, "sluice_usage_outbox_backlog") == 7
    finally:
        workers.stop()


def test_workers_that_exit_or_die_leave_no_live_gauges_behind(tmp_path: Path) -> None:
    require_redis()
    with FakeOpenAI() as upstream:
        config = shared_config(
            tmp_path / "data",
            providers=[{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
            models=[{"name": "slow", "deployments": [{"provider": "up"}]}],
        )
        gateway = SluiceProcess(tmp_path / "gw", config, args=WORKERS, start_timeout=WORKERS_START).start()
        directory = tmp_path / "data" / "prometheus"
        try:
            workers = wait_for(lambda: live_gauge_pids(directory) if len(live_gauge_pids(directory)) == 2 else None)
            # A worker stopped gracefully takes its live gauges with it (its counters stay: they are cumulative).
            stopped = min(workers)
            os.kill(stopped, signal.SIGTERM)
            wait_for(lambda: stopped not in live_gauge_pids(directory) or None)
            assert any(
                name.startswith("counter_") and name.endswith(f"_{stopped}.db") for name in os.listdir(directory)
            )

            # A worker killed outright runs nothing at exit: the next scrape forgets its gauges.
            upstream.enqueue(Fault("hang"))
            body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}
            hanging = threading.Thread(target=post_ignoring_failure, args=(gateway.url, body), daemon=True)
            hanging.start()
            wait_for(lambda: total(gateway.url, "sluice_in_flight_requests") == 1 or None)
            for pid in live_gauge_pids(directory):
                os.kill(pid, signal.SIGKILL)  # whichever worker holds the request dies with it
            hanging.join(timeout=60)
            wait_for(lambda: healthy(gateway.url) or None)
            assert total(gateway.url, "sluice_in_flight_requests") == 0
        finally:
            gateway.stop()


def post_ignoring_failure(url: str, body: dict[str, Any]) -> None:
    with contextlib.suppress(httpx.TransportError):  # its worker is killed while it waits
        httpx.post(
            f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=body, timeout=60
        )


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(check: Any, seconds: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not reached within {seconds} s")


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    gateway = SluiceProcess(tmp_path / "gw", {}, args=WORKERS, start_timeout=WORKERS_START)
    try:
        gateway.start()
        raise AssertionError("several workers without Redis must not start")
    except RuntimeError as exc:
        assert "through Redis" in str(exc)
