"""Logs of a real `sluice serve`: the access line carries the usage record, every line of a request its id.

JSON mode is JSON on every line, the gateway's own and the libraries' (uvicorn); on a terminal the format is the
readable console one.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes import FakeOpenAI, Reply
from tests.support.processes import PrivateRedis, SluiceProcess, clean_env
from tests.support.server import JWT_SECRET, MASTER_KEY, free_port

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
JSON_LOGS = {"level": "info", "access_log": True, "format": "json"}
# The usage record's fields the access line repeats under the same names (the record's own id is its usage_id).
RECORD_FIELDS = (
    "request_id",
    "principal_kind",
    "key_id",
    "user_id",
    "workspace_id",
    "surface",
    "endpoint",
    "model",
    "deployment",
    "status",
    "error_type",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanos",
    "queue_wait_ms",
)
RECORD_FLAGS = ("stream", "estimated", "cache_hit")  # booleans, stored as 0/1 by SQLite
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def chat(model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_the_access_line_carries_the_usage_record(tmp_path: Path) -> None:
    with FakeOpenAI(reply=Reply(cached_tokens=3)) as upstream:
        config = {
            "data_dir": str(tmp_path / "data"),
            "logging": JSON_LOGS,
            "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
            "models": [
                {
                    "name": "m",
                    "price": {"input": 1.0, "output": 2.0},
                    "deployments": [{"provider": "up", "model": "gpt-4o-mini", "capacity": 4}],
                }
            ],
        }
        gateway = SluiceProcess(tmp_path, config).start()
        try:
            with httpx.Client(base_url=gateway.url, headers=MASTER, timeout=30) as admin:
                workspace = admin.post("/admin/v1/workspaces", json={"name": "logged"}).json()["id"]
                key = admin.post("/admin/v1/keys", json={"name": "logged", "workspace_id": workspace}).json()
            with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {key['key']}"}) as http:
                sent = {
                    "plain": http.post("/v1/chat/completions", json=chat(), headers={"x-request-id": "plain"}),
                    "stream": http.post(
                        "/v1/chat/completions", json=chat(stream=True), headers={"x-request-id": "stream"}
                    ),
                    "refused": http.post(
                        "/v1/chat/completions", json=chat("nope"), headers={"x-request-id": "refused"}
                    ),
                }
        finally:
            gateway.stop()  # shipping the last records to the database on the way out
    assert [r.status_code for r in sent.values()] == [200, 200, 404]
    log = gateway.log()
    assert key["key"] not in log
    access = {line["request_id"]: line for line in json_lines(log) if line["event"] == "request"}
    database = sqlite3.connect(tmp_path / "data" / "sluice.db")
    database.row_factory = sqlite3.Row
    records = {row["request_id"]: dict(row) for row in database.execute("SELECT * FROM usage_records")}
    database.close()
    assert set(access) == set(records) == {"plain", "stream", "refused"}
    for request_id, line in access.items():
        record = records[request_id]
        assert line["usage_id"] == record["id"]
        assert {f: line[f] for f in RECORD_FIELDS} == {f: record[f] for f in RECORD_FIELDS}, request_id
        assert {f: line[f] for f in RECORD_FLAGS} == {f: bool(record[f]) for f in RECORD_FLAGS}, request_id
        assert line["latency_ms"] > 0 and record["latency_ms"] > 0  # each read at its own moment
        assert "authorization" not in line and "key" not in line
    plain = access["plain"]
    assert (plain["key_id"], plain["workspace_id"], plain["principal_kind"]) == (key["id"], workspace, "key")
    assert (plain["prompt_tokens"], plain["completion_tokens"], plain["cached_tokens"]) == (10, 6, 3)
    assert plain["cost_nanos"] > 0 and plain["deployment"] == "m#0:up/gpt-4o-mini"
    for timing in ("ttft_ms", "upstream_ms", "overhead_ms", "queue_wait_ms"):
        assert plain[timing] >= 0, timing
    assert access["stream"]["stream"] is True
    refused = access["refused"]
    assert (refused["status"], refused["error_type"], refused["deployment"]) == (404, "not_found", None)
    assert refused["upstream_ms"] is None and refused["overhead_ms"] is None  # it never reached an upstream


def test_every_line_of_a_request_carries_its_id_and_background_lines_none(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    config = {
        "data_dir": str(tmp_path / "data"),
        "logging": JSON_LOGS,
        "redis_url": redis.url,
        "limits": {"backend": "redis", "on_redis_error": "local_fallback", "defaults": {"key": {"rpm": 1000}}},
    }
    gateway = SluiceProcess(tmp_path, config).start()
    try:
        with httpx.Client(base_url=gateway.url, headers=MASTER, timeout=30) as admin:
            workspace = admin.post("/admin/v1/workspaces", json={"name": "outage"}).json()["id"]
            key = admin.post("/admin/v1/keys", json={"name": "outage", "workspace_id": workspace}).json()
            redis.stop()  # from here on, limits fall back to this replica and invalidations cannot be published
            answered = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=chat("mock-1"),
                headers={"authorization": f"Bearer {key['key']}", "x-request-id": "during-outage"},
                timeout=30,
            )
            renamed = admin.patch(f"/admin/v1/keys/{key['id']}", json={"name": "renamed"})
    finally:
        gateway.stop()
        redis.stop()
    assert answered.status_code == 200 and renamed.status_code == 200
    lines = json_lines(gateway.log())  # every line is JSON, uvicorn's included

    def ids_of(event: str) -> list[str | None]:
        return [line.get("request_id") for line in lines if line["event"] == event]

    # Lines the proxy request caused, wherever in the pipeline they were written.
    assert ids_of("limit store unavailable; enforcing per replica (limits.on_redis_error=local_fallback)") == [
        "during-outage"
    ]
    assert "during-outage" in ids_of("request")
    # The admin change's warning carries the id its response carried.
    assert ids_of("could not publish an identity change") == [renamed.headers["x-request-id"]]
    # Start-up, shutdown and background loops belong to no request.
    assert set(ids_of("identity invalidation channel lost; retrying")) == {None}
    assert set(ids_of("started")) == set(ids_of("stopped")) == {None}
    uvicorn = [line for line in lines if line.get("logger") == "uvicorn.error"]
    assert uvicorn and all("request_id" not in line and line["level"] for line in uvicorn)


def test_on_a_terminal_the_log_is_readable_console_lines(tmp_path: Path) -> None:
    port = free_port()
    config = {
        "master_key": MASTER_KEY,
        "auth": {"jwt_secret": JWT_SECRET},
        "ui": False,
        "data_dir": str(tmp_path / "data"),
        "logging": {"level": "info", "format": "auto"},
    }
    path = tmp_path / "sluice.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice", "serve", "--config", str(path), "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        output = read_until(controller, "Application startup complete", seconds=60)
        httpx.post(f"{proc_url(port)}/v1/chat/completions", json=chat("mock-1"), headers=MASTER, timeout=30)
        output += read_until(controller, "request", seconds=30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(controller)
    text = ANSI.sub("", output)
    lines = [line for line in text.splitlines() if line.strip()]
    assert not any(line.lstrip().startswith("{") for line in lines)  # no JSON
    assert re.search(r"^\S+ \[info\s*\] started\b.*\bmodels=1", text, re.MULTILINE)  # structlog's own lines
    assert re.search(r"\[info\s*\] Application startup complete\.\s+\[uvicorn\.error\]", text)  # the libraries'
    assert re.search(r"\[info\s*\] request\b.*\brequest_id=\w+", text)  # the access line
    assert "\x1b[" in output  # colours: a terminal is reading


def proc_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def read_until(fd: int, marker: str, seconds: float) -> str:
    """What the terminal shows until ``marker`` appears (bounded in time)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{marker!r} did not appear within {seconds} s:\n{seen.decode(errors='replace')}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            seen += chunk
    return seen.decode(errors="replace")
