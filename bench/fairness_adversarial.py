"""``python -m bench.fairness_adversarial``: the fairness benchmark's adversarial cases, through a real Sluice.

Each case starts its own ``sluice serve`` (one model, the built-in mock provider: 40 ms to the first token, then
150 tokens/s per request; capacity 2; ``aging_seconds: 6``, so the batch class's bound is 6 s), makes a
workspace (a tenant) and a key per client, and measures a light tenant B — a Poisson trickle, one request a
second, 32-128 tokens each, in the adversary's class — alone, then under the adversary:

- ``abandon``: tenant A's 20 clients each ask for 512 tokens (3.4 s of upstream time) and give up after 0.6 s,
  at once asking again: calls that end with no usage, which used to cost their tenant nothing.
- ``max_queue``: the standard class holds 20 waiting requests per deployment (so 10 per tenant by default);
  A's 40 clients retry 0.1 s after each 429. B's first-try admissions count.
- ``burst``: A floods interactive with 20 clients; tenant C sends bursts of 5 batch requests at once (at 1 s and
  9 s into the phase). C's longest wait is set against the 6 s bound.
- ``workers``: ``sluice serve --workers 2`` on Redis (limits and queue) in front of a counting fake upstream
  (200 ms per answer, capacity 4): 40 clients on their own connections for 10 s; the upstream's most concurrent
  requests must stay at 4.

B's figure is its end-to-end latency (the queue wait plus its own answer), median against the solo median.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import REPO_ROOT, Processes, free_port, port_open, wait_until

MODEL = "fair-model"
AGING_SECONDS = 6.0  # interactive 2 s, standard 4 s, batch 6 s
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Result:
    tenant: str
    status: int  # 0: the client gave up
    latency: float  # seconds, sent to answered
    wait_ms: float  # Sluice's x-sluice-queue-wait-ms
    position: int = -1  # Sluice's x-sluice-queue-position: place in line at enqueue (0: ran at once)
    first_try: bool = True  # not a retry after a 429


@dataclass
class Case:
    results: list[Result] = field(default_factory=list)

    def of(self, tenant: str, ok: bool = True) -> list[Result]:
        return [r for r in self.results if r.tenant == tenant and (r.status == 200 or not ok)]


def mock_config(**scheduling: Any) -> dict[str, Any]:
    return {
        "builtin_mock": False,
        "logging": {"level": "warning", "access_log": False},
        "providers": [
            {
                "name": "gpu",
                "kind": "mock",
                "mock": {"latency_ms": 40.0, "tokens_per_second": 150.0, "reply_tokens": 1000},
            }
        ],
        "models": [{"name": MODEL, "deployments": [{"provider": "gpu", "capacity": 2}]}],
        "scheduling": {"aging_seconds": AGING_SECONDS, **scheduling},
    }


class Gateway:
    """One ``sluice serve`` for one case, stopped on exit."""

    def __init__(self, config: dict[str, Any], workers: int = 1) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="sluice-adversarial-"))
        self.procs = Processes(self.workdir)
        self.master = "sk-bench-master-" + secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = self.workdir / "sluice.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.argv = [sys.executable, "-m", "sluice", "serve", "--config", str(path), "--port", str(self.port)]
        self.argv += ["--data-dir", str(self.workdir / "data"), "--workers", str(workers)]

    def __enter__(self) -> Gateway:
        child = self.procs.start("sluice", self.argv, {"SLUICE_MASTER_KEY": self.master})
        wait_until("sluice did not start", lambda: port_open(self.port), 120, child)
        return self

    def __exit__(self, *_: object) -> None:
        self.procs.stop_all()


async def make_keys(http: httpx.AsyncClient, master: str, tenants: dict[str, str]) -> dict[str, str]:
    """A workspace and a key of the given priority per tenant."""
    admin = {"Authorization": f"Bearer {master}"}
    keys = {}
    for tenant, priority in tenants.items():
        name = f"adv-{tenant}-{secrets.token_hex(3)}"
        ws = await http.post("/admin/v1/workspaces", json={"name": name}, headers=admin)
        ws.raise_for_status()
        body = {"name": tenant, "workspace_id": ws.json()["id"], "priority": priority}
        key = await http.post("/admin/v1/keys", json=body, headers=admin)
        key.raise_for_status()
        keys[tenant] = key.json()["key"]
    return keys


async def call(
    http: httpx.AsyncClient, case: Case, tenant: str, key: str, tokens: int, give_up: float | None = None
) -> Result:
    body = {"model": MODEL, "max_tokens": tokens, "messages": [{"role": "user", "content": f"{tenant} asks"}]}
    sent = time.monotonic()
    try:
        resp = await asyncio.wait_for(
            http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}), give_up
        )
    except TimeoutError:
        result = Result(tenant, 0, time.monotonic() - sent, float("nan"))
    else:
        wait = float(resp.headers.get("x-sluice-queue-wait-ms", "nan"))
        position = int(resp.headers.get("x-sluice-queue-position", "-1"))
        result = Result(tenant, resp.status_code, time.monotonic() - sent, wait, position)
    case.results.append(result)
    return result


async def trickle(http: httpx.AsyncClient, case: Case, key: str, seconds: float, seed: str) -> None:
    """Tenant B: Poisson arrivals, one a second on average, 32-128 tokens each."""
    rng, stop, tasks = random.Random(seed), time.monotonic() + seconds, []
    while time.monotonic() < stop:
        tasks.append(asyncio.create_task(call(http, case, "B", key, rng.randint(32, 128))))
        await asyncio.sleep(rng.expovariate(1.0))
    await asyncio.gather(*tasks)


async def closed_loop(stop: float, one: Callable[[], Awaitable[Result]], pause_after_429: float = 0.1) -> None:
    while time.monotonic() < stop:
        if (await one()).status == 429:
            await asyncio.sleep(pause_after_429)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def b_figures(solo: Case, adversary: Case) -> dict[str, Any]:
    alone = median([r.latency for r in solo.of("B")])
    under = median([r.latency for r in adversary.of("B")])
    return {
        "b_solo_median_s": round(alone, 3),
        "b_adversary_median_s": round(under, 3),
        "b_ratio": round(under / alone, 2),
        "b_queue_wait_median_ms": round(median([r.wait_ms for r in adversary.of("B")]), 1),
        # Told 1st in line (or ran at once): the scheduler put B first; the rest of its wait is for a slot to free.
        "b_next_in_line": f"{sum(1 for r in adversary.of('B') if 0 <= r.position <= 1)}/{len(adversary.of('B'))}",
        "b_served": len(adversary.of("B")),
        "b_refused": sum(1 for r in adversary.results if r.tenant == "B" and r.status != 200),
    }


async def with_solo(
    gw: Gateway,
    tenants: dict[str, str],
    adversary: Callable[[httpx.AsyncClient, dict[str, str], Case], Awaitable[None]],
) -> tuple[Case, Case]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=gw.url, timeout=120, limits=limits) as http:
        keys = await make_keys(http, gw.master, {"B": tenants["A"], **tenants})  # B in the flooder's class
        solo, under = Case(), Case()
        await trickle(http, solo, keys["B"], 10.0, "solo")
        await adversary(http, keys, under)
        return solo, under


# --- the cases -------------------------------------------------------------------------------------------------------


async def abandon_case(seconds: float) -> dict[str, Any]:
    async def adversary(http: httpx.AsyncClient, keys: dict[str, str], case: Case) -> None:
        stop = time.monotonic() + seconds
        flood = [closed_loop(stop, lambda: call(http, case, "A", keys["A"], 512, give_up=0.6)) for _ in range(20)]
        await asyncio.gather(trickle(http, case, keys["B"], seconds, "abandon"), *flood)

    with Gateway(mock_config()) as gw:
        solo, under = await with_solo(gw, {"A": "standard"}, adversary)
    return {**b_figures(solo, under), "a_abandoned": sum(1 for r in under.results if r.tenant == "A" and not r.status)}


async def max_queue_case(seconds: float) -> dict[str, Any]:
    classes = [
        {"name": "interactive", "weight": 300},
        {"name": "standard", "weight": 200, "max_queue": 20},
        {"name": "batch", "weight": 100},
    ]

    async def adversary(http: httpx.AsyncClient, keys: dict[str, str], case: Case) -> None:
        stop = time.monotonic() + seconds
        flood = [closed_loop(stop, lambda: call(http, case, "A", keys["A"], 128)) for _ in range(40)]
        await asyncio.sleep(2.0)  # the flooder is at its bound first
        await asyncio.gather(trickle(http, case, keys["B"], seconds - 2.0, "max_queue"), *flood)

    with Gateway(mock_config(classes=classes)) as gw:
        solo, under = await with_solo(gw, {"A": "standard"}, adversary)
    b = [r for r in under.results if r.tenant == "B"]
    return {
        **b_figures(solo, under),
        "b_first_try": f"{sum(1 for r in b if r.status == 200)}/{len(b)}",
        "a_refused_429": sum(1 for r in under.results if r.tenant == "A" and r.status == 429),
        "a_served": len(under.of("A")),
    }


async def burst_case(seconds: float) -> dict[str, Any]:
    async def adversary(http: httpx.AsyncClient, keys: dict[str, str], case: Case) -> None:
        stop = time.monotonic() + seconds
        flood = [closed_loop(stop, lambda: call(http, case, "A", keys["A"], 128)) for _ in range(20)]

        async def bursts() -> None:
            for at in (1.0, 9.0):
                await asyncio.sleep(max(0.0, stop - seconds + at - time.monotonic()))
                await asyncio.gather(*(call(http, case, "C", keys["C"], 64) for _ in range(5)))

        await asyncio.gather(trickle(http, case, keys["B"], seconds, "burst"), bursts(), *flood)

    with Gateway(mock_config()) as gw:
        solo, under = await with_solo(gw, {"A": "interactive", "C": "batch"}, adversary)
    waits = sorted(r.wait_ms / 1000 for r in under.of("C"))
    return {
        **b_figures(solo, under),
        "burst_waits_s": [round(w, 2) for w in waits],
        "burst_max_wait_s": round(max(waits, default=float("nan")), 2),
        "batch_bound_s": AGING_SECONDS,
    }


class CountingUpstream:
    """A fake OpenAI upstream that answers each chat completion after ``delay`` s and counts concurrent calls."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most = 0
        self.served = 0
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if not head.startswith(b"POST ") or b"/chat/completions" not in head.split(b"\r\n", 1)[0]:
                    # Model discovery and health checks: not scheduled, not counted.
                    listing = b'{"object":"list","data":[]}'
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n")
                    writer.write(listing)
                    await writer.drain()
                    continue
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.in_flight -= 1
                self.served += 1
                body = json.dumps(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "gpt-fake",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass  # the client closed (or the bench is ending)
        finally:
            writer.close()


async def workers_case(seconds: float) -> dict[str, Any]:
    upstream = CountingUpstream()
    await upstream.start()
    prefix = "bench-adv-" + secrets.token_hex(4)
    config = {
        "builtin_mock": False,
        "logging": {"level": "warning", "access_log": False},
        "redis_url": REDIS_URL,
        "limits": {"backend": "redis", "redis_prefix": prefix + "-lim"},
        "scheduling": {"backend": "redis", "prefix": prefix + "-sched"},
        "providers": [{"name": "up", "kind": "openai", "base_url": f"http://127.0.0.1:{upstream.port}/v1"}],
        "models": [{"name": MODEL, "deployments": [{"provider": "up", "model": "gpt-fake", "capacity": 4}]}],
    }
    statuses: list[int] = []
    try:
        with Gateway(config, workers=2) as gw:
            stop = time.monotonic() + seconds

            async def client() -> None:
                # One connection per client, so the kernel spreads them over both workers.
                async with httpx.AsyncClient(base_url=gw.url, timeout=60) as http:
                    headers = {"Authorization": f"Bearer {gw.master}"}
                    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
                    while time.monotonic() < stop:
                        resp = await http.post("/v1/chat/completions", json=body, headers=headers)
                        statuses.append(resp.status_code)

            await asyncio.gather(*(client() for _ in range(40)))
    finally:
        await upstream.stop()
    return {
        "capacity": 4,
        "upstream_most_concurrent": upstream.most,
        "served": upstream.served,
        "errors": sum(1 for s in statuses if s != 200),
    }


CASES: dict[str, Callable[[float], Awaitable[dict[str, Any]]]] = {
    "abandon": abandon_case,
    "max_queue": max_queue_case,
    "burst": burst_case,
    "workers": workers_case,
}


def markdown(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| case | B median solo / under | ratio (<= 2x) | case figure |", "|---|---|---|---|"]
    for name, r in results.items():
        if name == "workers":
            figure = (
                f"upstream saw at most {r['upstream_most_concurrent']} concurrent for capacity {r['capacity']} "
                f"({r['served']} served, {r['errors']} errors)"
            )
            rows.append(f"| workers (2, Redis) | - | - | {figure} |")
            continue
        extra = {
            "abandon": lambda r: f"A abandoned {r['a_abandoned']} calls",
            "max_queue": lambda r: f"B admitted first try {r['b_first_try']}; A refused {r['a_refused_429']} times",
            "burst": lambda r: (
                f"burst waits {r['burst_waits_s']} s, max {r['burst_max_wait_s']} s vs bound {r['batch_bound_s']:g} s"
            ),
        }[name](r)
        rows.append(
            f"| {name} | {r['b_solo_median_s'] * 1000:.0f} / {r['b_adversary_median_s'] * 1000:.0f} ms | "
            f"{r['b_ratio']:.2f}x | {extra} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness_adversarial", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", choices=[*CASES, []], help="which cases (default: all)")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each adversary phase")
    p.add_argument("--json", type=Path, help="where to save the results (default bench/results/...)")
    args = p.parse_args(argv)
    results = {}
    for name in args.cases or list(CASES):
        print(f"case {name}: {args.seconds:g} s", file=sys.stderr, flush=True)
        results[name] = asyncio.run(CASES[name](args.seconds))
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
    out = args.json or REPO_ROOT / "bench" / "results" / f"fairness-adversarial-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(f"\nsaved: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
