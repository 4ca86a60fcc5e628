"""Starting what the load generator talks to: the mock upstreams, the floor proxy and Sluice variants.

Each :class:`Target` is a pair of ports (non-stream answers, streamed answers), the key its requests carry,
and the proxy process behind it (none for ``direct``), whose memory and start-up time are reported.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml

from bench import nginx, payloads
from bench.http_client import HttpConnection, HttpProtocolError
from bench.procs import BenchError, Child, Pinning, Processes, free_port, pinned, port_open, wait_until
from bench.source import SluiceSource
from bench.variants import Upstreams, Variant, variant_config

UPSTREAM_START_TIMEOUT = 5.0
PROXY_START_TIMEOUT = 10.0
SLUICE_START_TIMEOUT = 30.0


@dataclass
class Target:
    name: str
    kind: str  # "reference" (direct, floor) or "sluice"
    description: str
    port: int
    stream_port: int
    key: str | None = None
    process: Child | None = None
    startup_s: float | None = None
    rss_idle_mb: float | None = None
    baseline: str | None = None
    tolerance: float = 0.10  # how far below its baseline's c=64 throughput this target may fall


@dataclass
class UpstreamPorts:
    chat: int
    stream: int
    chat_server: str  # "nginx" or "python"

    @property
    def urls(self) -> Upstreams:
        return Upstreams(f"http://127.0.0.1:{self.chat}/v1", f"http://127.0.0.1:{self.stream}/v1")


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_upstreams(procs: Processes, pins: Pinning, use_nginx: bool, frame_gap_ms: float) -> UpstreamPorts:
    stream_port = free_port()
    gap = str(frame_gap_ms)
    mock = procs.start(
        "upstream", pinned(_python("bench.upstream", "--port", str(stream_port), "--frame-gap-ms", gap), pins.upstream)
    )
    wait_until("the Python mock upstream did not start", lambda: port_open(stream_port), UPSTREAM_START_TIMEOUT, mock)
    binary = nginx.nginx_binary() if use_nginx else None
    if binary is None:
        return UpstreamPorts(stream_port, stream_port, "python")
    chat_port = free_port()
    conf = nginx.write_config(procs.workdir / "nginx", chat_port)
    server = procs.start("nginx", pinned(nginx.command(binary, conf), pins.upstream))
    wait_until("the nginx upstream did not start", lambda: port_open(chat_port), UPSTREAM_START_TIMEOUT, server)
    return UpstreamPorts(chat_port, stream_port, "nginx")


def direct(up: UpstreamPorts) -> Target:
    return Target("direct", "reference", f"straight to the mock upstream ({up.chat_server})", up.chat, up.stream)


def floor(procs: Processes, pins: Pinning, up: UpstreamPorts) -> Target:
    """The minimal aiohttp proxy; one process per upstream (it forwards bytes, so it cannot tell them apart)."""
    ports = []
    children = []
    for name, upstream in (("floor", up.chat), ("floor-stream", up.stream)):
        port = free_port()
        argv = _python("bench.minimal_proxy", "--port", str(port), "--upstream", f"http://127.0.0.1:{upstream}")
        child = procs.start(name, pinned(argv, pins.proxy))
        ports.append(port)
        children.append(child)
    for port, child in zip(ports, children, strict=True):
        wait_until(f"{child.name} proxy did not start", partial(port_open, port), PROXY_START_TIMEOUT, child)
    target = Target("floor", "reference", "minimal aiohttp pass-through proxy", ports[0], ports[1])
    target.process = children[0]
    target.rss_idle_mb = children[0].rss_mb()
    return target


def _sluice_argv(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "sluice"
    return [str(script), *args] if script.exists() else _python("sluice", *args)


def _create_virtual_key(config: Path, data_dir: Path, env: dict[str, str]) -> str:
    argv = _sluice_argv("keys", "create", "--name", "bench", "--config", str(config), "--data-dir", str(data_dir))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("`sluice keys create` did not finish within 60 s") from None
    lines = [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
    if done.returncode != 0 or not lines:
        raise BenchError(f"`sluice keys create` failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return lines[-1]


def _answers(port: int, key: str | None) -> bool:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with HttpConnection(port, timeout=2.0) as conn:
            reply = conn.post("/v1/chat/completions", payloads.chat_request(), headers)
    except (OSError, HttpProtocolError):
        return False
    if reply.status in (401, 403, 404):
        raise BenchError(f"Sluice on port {port} refused the benchmark request: {reply.status} {reply.body[:300]!r}")
    return reply.status == 200


def start_sluice(procs: Processes, pins: Pinning, up: UpstreamPorts, variant: Variant, source: SluiceSource) -> Target:
    """A fresh data directory and config, the key made if needed, then spawn → first successful answer."""
    workdir = procs.workdir / variant.name
    data_dir = workdir / "data"
    workdir.mkdir(parents=True)
    config = workdir / "sluice.yaml"
    config.write_text(yaml.safe_dump(variant_config(variant, up.urls), sort_keys=False), encoding="utf-8")
    master = "sk-bench-master-" + secrets.token_hex(16)
    env = {**source.env, **variant.env, "SLUICE_MASTER_KEY": master}
    key: str | None = master
    if variant.key == "virtual":
        key = _create_virtual_key(config, data_dir, {**os.environ, **env})
    elif variant.key == "none":
        key = None
    port = free_port()
    argv = _sluice_argv("serve", "--config", str(config), "--port", str(port), "--data-dir", str(data_dir))
    spawned = time.perf_counter()
    child = procs.start(variant.name, pinned(argv, pins.proxy), env)
    wait_until(
        f"{variant.name} did not answer its first chat request",
        lambda: _answers(port, key),
        SLUICE_START_TIMEOUT,
        child,
    )
    startup = time.perf_counter() - spawned
    target = Target(variant.name, "sluice", variant.description, port, port, key, child, baseline=variant.baseline)
    target.tolerance = variant.tolerance
    target.startup_s = startup
    target.rss_idle_mb = child.rss_mb()
    return target
