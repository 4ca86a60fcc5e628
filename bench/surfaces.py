"""Pass-through overhead per client surface: OpenAI, Anthropic and Ollama side by side, in one run.

    python -m bench.surfaces [--duration 10] [--repeat 2]

nginx answers each format's canned non-stream reply (``/v1/chat/completions``, ``/v1/messages``, ``/api/chat``);
one Sluice serves three models, one per provider kind, whose public names equal the upstream's, so each request
passes through untouched. For each surface the run measures direct and through Sluice at one connection (added
p50 latency) and at 64 (added CPU per request, from throughput on the pinned core), and reports each surface's
overhead as a ratio to the OpenAI surface's (issue target: at most 1.2).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.nginx import nginx_binary
from bench.procs import BenchError, Pinning, Processes, free_port, pinned, port_open, wait_until
from bench.wrk import run_wrk

ANTHROPIC_REPLY = {
    "id": "msg_bench0001",
    "type": "message",
    "role": "assistant",
    "model": "bench-claude",
    "content": [{"type": "text", "text": "A gateway should add little latency because every user pays it."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 41, "output_tokens": 20, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
}
OLLAMA_REPLY = {
    "model": "bench-llama",
    "created_at": "2026-11-24T00:00:00.000000Z",
    "message": {"role": "assistant", "content": "A gateway should add little latency because every user pays it."},
    "done": True,
    "done_reason": "stop",
    "total_duration": 1000,
    "load_duration": 10,
    "prompt_eval_count": 41,
    "prompt_eval_duration": 100,
    "eval_count": 20,
    "eval_duration": 800,
}
OPENAI_REPLY = {
    "id": "chatcmpl-bench1",
    "object": "chat.completion",
    "created": 1732000000,
    "model": "bench-chat",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "A gateway should add little latency because every user pays it.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 41, "completion_tokens": 20, "total_tokens": 61},
}
MESSAGES = [
    {"role": "user", "content": "Explain in two sentences why a gateway should add little latency."},
]


@dataclass(frozen=True)
class Surface:
    name: str
    path: str
    body: Mapping[str, object]
    reply: Mapping[str, object]
    auth: str  # header line for wrk's Lua script


def surfaces(key: str) -> list[Surface]:
    bearer = f'wrk.headers["Authorization"] = "Bearer {key}"'
    return [
        Surface(
            "openai",
            "/v1/chat/completions",
            {"model": "bench-chat", "messages": MESSAGES, "max_tokens": 128},
            OPENAI_REPLY,
            bearer,
        ),
        Surface(
            "anthropic",
            "/v1/messages",
            {"model": "bench-claude", "messages": MESSAGES, "max_tokens": 128},
            ANTHROPIC_REPLY,
            f'wrk.headers["x-api-key"] = "{key}"\nwrk.headers["anthropic-version"] = "2023-06-01"',
        ),
        Surface(
            "ollama",
            "/api/chat",
            {"model": "bench-llama", "messages": MESSAGES, "stream": False, "options": {"num_predict": 128}},
            OLLAMA_REPLY,
            bearer,
        ),
    ]


LUA = """\
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _nginx_conf(workdir: Path, port: int, all_surfaces: list[Surface]) -> Path:
    locations = []
    for s in all_surfaces:
        body = json.dumps(s.reply, separators=(",", ":"))
        locations.append(f"location = {s.path} {{ default_type application/json; return 200 '{body}'; }}")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n"
        f"    access_log off;\n{temp}\n    keepalive_requests 10000000;\n    keepalive_timeout 120s;\n"
        f"    server {{\n        listen 127.0.0.1:{port} backlog=4096;\n        "
        + "\n        ".join(locations)
        + "\n        location / { return 404; }\n    }\n}\n",
        encoding="utf-8",
    )
    return conf


def _script(path: Path, surface: Surface, auth: bool) -> Path:
    body = json.dumps(surface.body, separators=(",", ":"))
    path.write_text(LUA.format(path=surface.path, body=body, auth=surface.auth if auth else ""), encoding="utf-8")
    return path


def _sluice_config(upstream: str) -> dict[str, object]:
    return {
        "builtin_mock": False,
        "logging": {"level": "warning", "format": "json"},
        "providers": [
            {"name": "oa", "kind": "openai", "base_url": f"{upstream}/v1", "api_key": "sk-up"},
            {"name": "an", "kind": "anthropic", "base_url": upstream, "api_key": "sk-up"},
            {"name": "ol", "kind": "ollama", "base_url": upstream},
        ],
        "models": [
            {"name": "bench-chat", "deployments": [{"provider": "oa"}]},
            {"name": "bench-claude", "deployments": [{"provider": "an"}]},
            {"name": "bench-llama", "deployments": [{"provider": "ol"}]},
        ],
    }


def run(duration: float, repeat: int) -> dict[str, dict[str, float]]:
    pins = Pinning.plan(True)
    binary = nginx_binary()
    if binary is None:
        raise BenchError("nginx is not installed: run bench/install-tools.sh")
    key = "sk-bench-master-" + secrets.token_hex(16)
    all_surfaces = surfaces(key)
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="sluice-bench-surfaces-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        try:
            up_port = free_port()
            conf = _nginx_conf(work / "nginx", up_port, all_surfaces)
            nginx = procs.start("nginx", pinned([binary, "-c", str(conf), "-p", str(conf.parent)], pins.upstream))
            wait_until("nginx did not start", lambda: port_open(up_port), 5.0, nginx)
            config = work / "sluice.yaml"
            config.write_text(yaml.safe_dump(_sluice_config(f"http://127.0.0.1:{up_port}")), encoding="utf-8")
            port = free_port()
            argv = [
                sys.executable,
                "-m",
                "sluice",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--data-dir",
                str(work / "data"),
            ]
            sluice = procs.start("sluice", pinned(argv, pins.proxy), {"SLUICE_MASTER_KEY": key})
            wait_until("sluice did not start", lambda: port_open(port), 30.0, sluice)
            time.sleep(1.0)
            threads = max(1, len(pins.load))
            for _ in range(repeat):
                for surface in all_surfaces:
                    for target, target_port, auth in (("direct", up_port, False), ("sluice", port, True)):
                        script = _script(work / f"{surface.name}-{target}.lua", surface, auth)
                        for conc in (1, 64):
                            run_wrk(target_port, script, conc, 2, threads, pins.load)  # warm-up
                            result = run_wrk(target_port, script, conc, duration, threads, pins.load)
                            if result.errors:
                                raise BenchError(f"{surface.name} via {target}: {result.errors} errors")
                            entry = results.setdefault(f"{surface.name}/{target}", {})
                            entry.setdefault("p50_c1_ms" if conc == 1 else "rps_c64", []).append(
                                result.p50_ms if conc == 1 else result.rps
                            )
        finally:
            procs.stop_all()
    return {name: {k: statistics.median(v) for k, v in figures.items()} for name, figures in results.items()}


def report(figures: dict[str, dict[str, float]]) -> str:
    rows = [
        "| surface | added p50 at c=1 (ms) | CPU per request added at c=64 (µs) | ratio to OpenAI (latency / CPU) |",
        "|---|---|---|---|",
    ]
    added: dict[str, tuple[float, float]] = {}
    for name in ("openai", "anthropic", "ollama"):
        direct, sluice = figures[f"{name}/direct"], figures[f"{name}/sluice"]
        latency = sluice["p50_c1_ms"] - direct["p50_c1_ms"]
        cpu = (1 / sluice["rps_c64"] - 1 / direct["rps_c64"]) * 1e6
        added[name] = (latency, cpu)
    base_latency, base_cpu = added["openai"]
    for name, (latency, cpu) in added.items():
        rows.append(f"| {name} | {latency:.3f} | {cpu:.0f} | {latency / base_latency:.2f} / {cpu / base_cpu:.2f} |")
    verdict = all(max(lat / base_latency, c / base_cpu) <= 1.2 for lat, c in added.values())
    rows.append("")
    rows.append(
        f"Target (Anthropic and Ollama at most 1.2x the OpenAI surface's overhead): {'pass' if verdict else 'FAIL'}"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.surfaces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    figures = run(args.duration, args.repeat)
    print(json.dumps(figures, indent=2), file=sys.stderr)
    print(report(figures))


if __name__ == "__main__":
    main()
