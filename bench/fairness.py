"""``python -m bench.fairness``: fair share, aging and the scheduler's own cost, through a real Sluice over HTTP.

A Sluice process serves one model whose deployment (the built-in mock provider: a fixed first-token latency,
then a steady token rate, each request asking for a random answer length) has capacity 2. Three kinds of
traffic, each tenant a workspace of its own with a virtual key:

- tenant B sends a steady trickle of ``interactive`` requests (Poisson arrivals);
- two batch tenants each keep one ``batch`` request going at all times (a steady batch stream), which must climb
  every class to get through once the upstream is busy;
- in the second phase, tenant A floods ``interactive`` with 50 concurrent clients in a closed loop.

Reported (and checked against the targets in PRODUCT.md): B's median and p95 queue wait without and under the
flood; Jain's fairness index of the tokens served in the flooded class, each tenant's service normalised by its
max-min fair share (Jain et al. 1984: x_i = served_i / fair_i); the longest queue wait of any batch request
against the batch class's aging bound; and the scheduler's added latency with an empty queue (acquire + release,
in-process, the default backend). Queue waits are Sluice's own ``x-sluice-queue-wait-ms`` headers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import REPO_ROOT, Processes, free_port, port_open, wait_until
from sluice.canonical import Usage
from sluice.config import ProviderConfig, SchedulingConfig, Timeouts
from sluice.identity.principal import Principal
from sluice.providers.base import Target
from sluice.providers.mock import MockProvider
from sluice.routing.catalog import Deployment
from sluice.scheduling.service import Scheduler

MODEL = "fair-model"
AGING_SECONDS = 15.0  # interactive 5 s, standard 10 s, batch 15 s
TOKENS_PER_SECOND = 150.0  # per request: a mid-size model on one GPU
LATENCY_MS = 40.0  # time to first token
OUTPUT_WEIGHT = 2.0


@dataclass
class Sample:
    tenant: str
    cls: str
    phase: str
    sent: float
    done: float
    status: int
    wait_ms: float
    position: int
    tokens: float  # input + 2 x output, as the upstream reported them


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    phase: str = "alone"
    stop: float = 0.0
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase -> (start, stop)


def sluice_config() -> dict[str, Any]:
    return {
        "builtin_mock": False,
        "logging": {"level": "warning", "access_log": False},
        "providers": [
            {
                "name": "gpu",
                "kind": "mock",
                "mock": {"latency_ms": LATENCY_MS, "tokens_per_second": TOKENS_PER_SECOND, "reply_tokens": 1000},
            }
        ],
        "models": [{"name": MODEL, "deployments": [{"provider": "gpu", "capacity": 2}]}],
        "scheduling": {"aging_seconds": AGING_SECONDS, "output_token_weight": OUTPUT_WEIGHT},
    }


async def make_keys(http: httpx.AsyncClient) -> dict[str, str]:
    """A workspace (so a tenant of its own) and a virtual key for each client, made through the admin API."""
    keys = {}
    for tenant, priority in (("A", "interactive"), ("B", "interactive"), ("C1", "batch"), ("C2", "batch")):
        ws = await http.post("/admin/v1/workspaces", json={"name": f"bench-{tenant}-{secrets.token_hex(3)}"})
        ws.raise_for_status()
        key = await http.post(
            "/admin/v1/keys", json={"name": tenant, "workspace_id": ws.json()["id"], "priority": priority}
        )
        key.raise_for_status()
        keys[tenant] = key.json()["key"]
    return keys


async def one(http: httpx.AsyncClient, run: Run, tenant: str, cls: str, key: str, max_tokens: int) -> None:
    body = {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"{tenant} asks"}]}
    sent, phase = time.monotonic(), run.phase
    resp = await http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    tokens = 0.0
    if resp.status_code == 200:
        usage = resp.json().get("usage") or {}
        tokens = usage.get("prompt_tokens", 0) + OUTPUT_WEIGHT * usage.get("completion_tokens", 0)
    run.samples.append(
        Sample(
            tenant,
            cls,
            phase,
            sent,
            time.monotonic(),
            resp.status_code,
            float(resp.headers.get("x-sluice-queue-wait-ms", "nan")),
            int(resp.headers.get("x-sluice-queue-position", "-1")),
            tokens,
        )
    )


async def trickle(http: httpx.AsyncClient, run: Run, key: str, rng: random.Random, mean_gap: float) -> None:
    """Tenant B: Poisson arrivals of short standard requests, each on its own."""
    tasks = []
    while time.monotonic() < run.stop:
        tasks.append(asyncio.create_task(one(http, run, "B", "interactive", key, rng.randint(32, 128))))
        await asyncio.sleep(rng.expovariate(1 / mean_gap))
    await asyncio.gather(*tasks)


async def loop(http: httpx.AsyncClient, run: Run, tenant: str, cls: str, key: str, rng: random.Random) -> None:
    """A closed-loop client: the next request as soon as the last one is answered."""
    low, high = (128, 256) if cls == "batch" else (64, 256)
    while time.monotonic() < run.stop:
        await one(http, run, tenant, cls, key, rng.randint(low, high))


async def phase(http: httpx.AsyncClient, run: Run, keys: dict[str, str], name: str, seconds: float, flood: int) -> None:
    run.phase, run.stop = name, time.monotonic() + seconds
    run.windows[name] = (time.monotonic(), run.stop)
    rng = random.Random(name)
    work = [trickle(http, run, keys["B"], rng, 1.0)]
    work += [loop(http, run, c, "batch", keys[c], random.Random(f"{name}{c}")) for c in ("C1", "C2")]
    work += [loop(http, run, "A", "interactive", keys["A"], random.Random(f"{name}A{n}")) for n in range(flood)]
    await asyncio.gather(*work)


# --- the scheduler's own cost with an empty queue -------------------------------------------------------------------


async def empty_queue_overhead(pairs: int = 200_000) -> dict[str, float]:
    """Microseconds per acquire + release on a deployment with free capacity (in-process backend)."""
    scheduler = Scheduler.local(SchedulingConfig())
    provider = MockProvider(ProviderConfig(name="gpu", kind="mock"))
    deployment = Deployment("bench#0:gpu/m", "m", provider, Target("m", Timeouts()), capacity=2)
    principal = Principal(kind="key", id="k", role="member", workspace_id="w")
    usage = Usage(100, 50)
    batches: list[float] = []
    for _ in range(pairs // 1000):
        started = time.perf_counter_ns()
        for _ in range(1000):
            slot = await scheduler.acquire(deployment, principal, MODEL)
            slot.release(usage)
        batches.append((time.perf_counter_ns() - started) / 1000 / 1000)
    batches.sort()
    return {"mean_us": statistics.fmean(batches), "p99_us": batches[int(len(batches) * 0.99) - 1]}


# --- report ----------------------------------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def jain(served: dict[str, float], demand: dict[str, float]) -> float:
    """Jain's index of each tenant's service normalised by its max-min fair share of what the class received.

    ``demand`` is what each tenant asked for in the window (infinite for a backlogged one), ``served`` what
    was completed for it in the window; a tenant served all it asked has x = 1, a starved one x near 0.
    """
    left, tenants, fair = sum(served.values()), sorted(demand, key=lambda t: demand[t]), {}
    for n, tenant in enumerate(tenants):
        fair[tenant] = min(demand[tenant], left / (len(tenants) - n))
        left -= fair[tenant]
    x = [served[t] / fair[t] for t in tenants if fair[t] > 0]
    return sum(x) ** 2 / (len(x) * sum(v * v for v in x)) if x else float("nan")


def summarise(run: Run, flood_seconds: float, overhead: dict[str, float]) -> dict[str, Any]:
    ok = [s for s in run.samples if s.status == 200]
    b = {p: [s.wait_ms for s in ok if s.tenant == "B" and s.phase == p] for p in ("alone", "flood")}
    flood = [s for s in ok if s.phase == "flood"]
    start, stop = run.windows["flood"]
    # Served: tokens of requests completed within the flood. Demand: B's requests sent within it (each asked
    # for exactly the tokens it got: the mock answers max_tokens); A always had its 50 clients waiting.
    served = {t: sum(s.tokens for s in ok if s.tenant == t and start <= s.done <= stop) for t in ("A", "B")}
    demand = {"A": float("inf"), "B": sum(s.tokens for s in ok if s.tenant == "B" and start <= s.sent <= stop)}
    batch_waits = [s.wait_ms for s in ok if s.cls == "batch" and s.phase == "flood"]
    median_alone, median_flood = statistics.median(b["alone"]), statistics.median(b["flood"])
    return {
        "requests": {p: sum(1 for s in run.samples if s.phase == p) for p in ("alone", "flood")},
        "errors": sum(1 for s in run.samples if s.status != 200),
        "b_wait_ms": {p: {"median": statistics.median(v), "p95": quantile(v, 0.95), "n": len(v)} for p, v in b.items()},
        "b_median_ratio": median_flood / median_alone if median_alone else float("inf"),
        "tokens_served_in_flood": {
            t: round(sum(s.tokens for s in flood if s.tenant == t)) for t in ("A", "B", "C1", "C2")
        },
        "jain_flooded_class": jain(served, demand),
        "batch_max_wait_ms": max(batch_waits, default=float("nan")),
        "batch_served_in_flood": len(batch_waits),
        "batch_aging_bound_ms": AGING_SECONDS * 1000,
        "empty_queue_overhead_us": overhead,
        "flood_seconds": flood_seconds,
    }


def markdown(r: dict[str, Any]) -> str:
    b = r["b_wait_ms"]

    def verdict(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    rows = [
        "| measure | value | target | |",
        "|---|---|---|---|",
        f"| B's queue wait alone: median / p95 | {b['alone']['median']:.0f} / {b['alone']['p95']:.0f} ms "
        f"(n={b['alone']['n']}) | | |",
        f"| B's queue wait under A's flood: median / p95 | {b['flood']['median']:.0f} / {b['flood']['p95']:.0f} ms "
        f"(n={b['flood']['n']}) | | |",
        f"| B's median under flood / alone | {r['b_median_ratio']:.2f}x | <= 2x | "
        f"{verdict(r['b_median_ratio'] <= 2)} |",
        f"| Jain's index of tokens served, flooded class (max-min normalised) | {r['jain_flooded_class']:.3f} | "
        "1 = fair | |",
        f"| longest batch wait under flood (n={r['batch_served_in_flood']}) | {r['batch_max_wait_ms']:.0f} ms | "
        f"<= {r['batch_aging_bound_ms']:.0f} ms (aging bound) | "
        f"{verdict(r['batch_max_wait_ms'] <= r['batch_aging_bound_ms'])} |",
        f"| scheduler overhead, empty queue: mean / p99 | {r['empty_queue_overhead_us']['mean_us']:.1f} / "
        f"{r['empty_queue_overhead_us']['p99_us']:.1f} us | < 100 us | "
        f"{verdict(r['empty_queue_overhead_us']['mean_us'] < 100)} |",
    ]
    tokens = ", ".join(f"{t} {n}" for t, n in r["tokens_served_in_flood"].items())
    return "\n".join([*rows, "", f"Weighted tokens served during the flood: {tokens}; errors: {r['errors']}."])


# --- running ---------------------------------------------------------------------------------------------------------


async def measure(url: str, master: str, alone: float, flood: float, clients: int) -> Run:
    limits = httpx.Limits(max_connections=clients + 64, max_keepalive_connections=clients + 64)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        http.headers["Authorization"] = f"Bearer {master}"
        keys = await make_keys(http)
        del http.headers["Authorization"]
        run = Run()
        print(f"phase 1: B and the batch stream alone, {alone:g} s", file=sys.stderr, flush=True)
        await phase(http, run, keys, "alone", alone, 0)
        print(f"phase 2: the same under A's flood of {clients} clients, {flood:g} s", file=sys.stderr, flush=True)
        await phase(http, run, keys, "flood", flood, clients)
        return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.splitlines()[0])
    p.add_argument("--alone", type=float, default=30.0, help="seconds of the phase without the flood")
    p.add_argument("--flood", type=float, default=45.0, help="seconds of the phase under the flood")
    p.add_argument("--clients", type=int, default=50, help="tenant A's concurrent clients")
    p.add_argument("--quick", action="store_true", help="15 s + 20 s")
    p.add_argument("--json", type=Path, help="where to save the results (default bench/results/fairness-<time>.json)")
    args = p.parse_args(argv)
    alone, flood = (15.0, 20.0) if args.quick else (args.alone, args.flood)
    overhead = asyncio.run(empty_queue_overhead())
    workdir = Path(tempfile.mkdtemp(prefix="sluice-fairness-"))
    procs = Processes(workdir)
    master = "sk-bench-master-" + secrets.token_hex(16)
    port = free_port()
    config = workdir / "sluice.yaml"
    config.write_text(yaml.safe_dump(sluice_config()), encoding="utf-8")
    argv_serve = [sys.executable, "-m", "sluice", "serve", "--config", str(config), "--port", str(port)]
    try:
        child = procs.start("sluice", [*argv_serve, "--data-dir", str(workdir / "data")], {"SLUICE_MASTER_KEY": master})
        wait_until("sluice did not start", lambda: port_open(port), 30, child)
        run = asyncio.run(measure(f"http://127.0.0.1:{port}", master, alone, flood, args.clients))
    finally:
        procs.stop_all()
    result = summarise(run, flood, overhead)
    out = args.json or REPO_ROOT / "bench" / "results" / f"fairness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"result": result, "samples": [asdict(s) for s in run.samples]}, indent=1))
    print(markdown(result))
    print(f"\nsaved: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
