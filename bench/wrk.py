"""wrk as the load generator: a Lua script posts the chat request and reports exact figures as JSON.

wrk's own ``--latency`` table rounds to its display units; the script's ``done`` hook prints the same
distribution in microseconds on one line (``BENCH {...}``), which is what we parse.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import BenchError, pinned

LUA = """\
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect/read/write errors, timeouts and non-2xx answers
    rss_after_mb: float | None = None  # the proxy's resident memory right after this point
    # The proxy process's own CPU time (all threads) per answered request during the point: what a request costs
    # the proxy, unaffected by how much of the CPU the machine gives it at that moment.
    cpu_us_per_request: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed: run bench/install-tools.sh (apt-get install -y wrk nginx-light)")
    return found


def write_script(path: Path, body: bytes, key: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    text = body.decode()
    if "]==]" in text:
        raise BenchError("the request body cannot be embedded in the Lua script")
    path.write_text(LUA.format(body=text, auth=auth), encoding="utf-8")
    return path


def run_wrk(
    port: int, script: Path, concurrency: int, seconds: float, threads: int, cpus: frozenset[int]
) -> LoadResult:
    threads = max(1, min(threads, concurrency))
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    try:
        done = subprocess.run(pinned(argv, cpus), capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk against port {port} did not finish within {seconds + 30:g} s") from None
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    raw = json.loads(line[len("BENCH ") :])
    secs = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        concurrency=concurrency,
        requests=raw["requests"],
        seconds=round(secs, 3),
        rps=raw["requests"] / secs if secs else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
    )
