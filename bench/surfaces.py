"""Overhead per client surface: OpenAI, Anthropic, Ollama and the Responses API side by side, in one run.

    python -m bench.surfaces [--duration 10] [--repeat 2] [--only openai,responses]

nginx answers each format's canned non-stream reply (``/v1/chat/completions``, ``/v1/messages``, ``/api/chat``,
``/v1/responses``); one Sluice serves one model per provider kind whose public names equal the upstream's, so each
request passes through untouched. Two translated cases sit beside them: chat completions and the Responses API,
each sent to the Anthropic model (translated to ``/v1/messages``; their "direct" figure is that upstream's). For
each case the run measures direct and through Sluice at one connection (added p50 latency) and at 64 (added CPU
per request, from throughput on the pinned core), and reports each surface's overhead as a ratio to the OpenAI
surface's (issue target: at most 1.2 for Anthropic and Ollama) and the Responses API's to chat completions' in the
same case (pass-through and translated).
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
RESPONSES_REPLY = {
    "id": "resp_bench0001",
    "object": "response",
    "created_at": 1732000000,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": 128,
    "model": "bench-resp",
    "output": [
        {
            "type": "message",
            "id": "msg_bench0001",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "A gateway should add little latency because every user pays it.",
                    "annotations": [],
                    "logprobs": [],
                }
            ],
        }
    ],
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "metadata": {},
    "usage": {
        "input_tokens": 41,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 61,
    },
}
MESSAGES = [
    {"role": "user", "content": "Explain in two sentences why a gateway should add little latency."},
]


@dataclass(frozen=True)
class Surface:
    name: str
    path: str
    body: Mapping[str, object]
    reply: Mapping[str, object] | None  # what nginx answers at ``path`` (None: a translated case, see ``direct``)
    auth: str  # header line for wrk's Lua script
    direct: str | None = None  # a translated case's upstream: the surface whose direct figure it is measured against


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
        Surface(
            "responses",
            "/v1/responses",
            {"model": "bench-resp", "input": MESSAGES, "max_output_tokens": 128, "store": False},
            RESPONSES_REPLY,
            bearer,
        ),
        Surface(
            "chat-translated",
            "/v1/chat/completions",
            {"model": "bench-claude", "messages": MESSAGES, "max_tokens": 128},
            None,
            bearer,
            direct="anthropic",
        ),
        Surface(
            "responses-translated",
            "/v1/responses",
            {"model": "bench-claude", "input": MESSAGES, "max_output_tokens": 128, "store": False},
            None,
            bearer,
            direct="anthropic",
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
        if s.reply is None:
            continue
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
            {"name": "or", "kind": "openai", "base_url": f"{upstream}/v1", "api_key": "sk-up", "responses_api": True},
        ],
        "models": [
            {"name": "bench-chat", "deployments": [{"provider": "oa"}]},
            {"name": "bench-claude", "deployments": [{"provider": "an"}]},
            {"name": "bench-llama", "deployments": [{"provider": "ol"}]},
            {"name": "bench-resp", "deployments": [{"provider": "or"}]},
        ],
    }


def run(duration: float, repeat: int, only: set[str] | None = None) -> dict[str, dict[str, float]]:
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
            by_name = {s.name: s for s in all_surfaces}
            chosen = [s for s in all_surfaces if only is None or s.name in only]
            for _ in range(repeat):
                for surface in chosen:
                    for target, target_port, auth in (("direct", up_port, False), ("sluice", port, True)):
                        if target == "direct" and surface.direct is not None:
                            continue  # measured as its upstream's surface (below)
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
                    if surface.direct is not None and f"{surface.direct}/direct" not in results:
                        upstream_case = by_name[surface.direct]
                        script = _script(work / f"{upstream_case.name}-direct.lua", upstream_case, False)
                        for conc in (1, 64):
                            result = run_wrk(up_port, script, conc, duration, threads, pins.load)
                            entry = results.setdefault(f"{upstream_case.name}/direct", {})
                            entry.setdefault("p50_c1_ms" if conc == 1 else "rps_c64", []).append(
                                result.p50_ms if conc == 1 else result.rps
                            )
        finally:
            procs.stop_all()
    return {name: {k: statistics.median(v) for k, v in figures.items()} for name, figures in results.items()}


DIRECT_OF = {"chat-translated": "anthropic", "responses-translated": "anthropic"}
# (case, the chat-completions case it is compared with)
RESPONSES_PAIRS = (("responses", "openai"), ("responses-translated", "chat-translated"))


def report(figures: dict[str, dict[str, float]]) -> str:
    rows = [
        "| surface | added p50 at c=1 (ms) | CPU per request added at c=64 (µs) | ratio to OpenAI (latency / CPU) |",
        "|---|---|---|---|",
    ]
    added: dict[str, tuple[float, float]] = {}
    for name in ("openai", "anthropic", "ollama", "responses", "chat-translated", "responses-translated"):
        if f"{name}/sluice" not in figures:
            continue
        direct, sluice = figures[f"{DIRECT_OF.get(name, name)}/direct"], figures[f"{name}/sluice"]
        latency = sluice["p50_c1_ms"] - direct["p50_c1_ms"]
        cpu = (1 / sluice["rps_c64"] - 1 / direct["rps_c64"]) * 1e6
        added[name] = (latency, cpu)
    base_latency, base_cpu = added.get("openai", (float("nan"), float("nan")))
    for name, (latency, cpu) in added.items():
        rows.append(f"| {name} | {latency:.3f} | {cpu:.0f} | {latency / base_latency:.2f} / {cpu / base_cpu:.2f} |")
    rows.append("")
    checked = [added[n] for n in ("anthropic", "ollama") if n in added]
    if checked and "openai" in added:
        verdict = all(max(lat / base_latency, c / base_cpu) <= 1.2 for lat, c in checked)
        rows.append(
            f"Target (Anthropic and Ollama at most 1.2x the OpenAI surface's overhead): {'pass' if verdict else 'FAIL'}"
        )
    for responses, chat in RESPONSES_PAIRS:
        if responses in added and chat in added:
            (r_lat, r_cpu), (c_lat, c_cpu) = added[responses], added[chat]
            rows.append(
                f"Responses API / chat completions ({responses} / {chat}): {r_lat / c_lat:.2f} / {r_cpu / c_cpu:.2f}"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.surfaces", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated cases (default: all)")
    args = parser.parse_args()
    figures = run(args.duration, args.repeat, set(args.only.split(",")) if args.only else None)
    print(json.dumps(figures, indent=2), file=sys.stderr)
    print(report(figures))


if __name__ == "__main__":
    main()
