"""``python -m bench.soak``: an hour of mixed traffic through a real Sluice; memory and file descriptors stay flat.

SECURITY case 36 and PRODUCT's memory target: a `sluice serve` process (defaults: SQLite, usage records, metrics,
access log) in front of the benchmark's mock upstreams serves, for ``--duration`` seconds, a steady mix from
``--clients`` concurrent clients: non-stream chat completions, streamed ones read to the end, streamed ones the
client abandons after the first event (the upstream call is cancelled), and requests with a wrong key. Every
``--every`` seconds the process's resident memory, open file descriptors and sockets are sampled. After the load
stops and the keep-alive timeouts pass, the in-flight gauges must be back at zero and the sockets back to idle.

Reported: the samples' first (after warm-up), last and highest values, the least-squares slope per hour, and the
verdict (flat: the last RSS within 10% of the warmed-up one, and fds back to their idle count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import payloads
from bench.procs import REPO_ROOT, Child, Pinning, Processes
from bench.source import working_tree
from bench.targets import start_sluice, start_upstreams
from bench.variants import find

WARM_UP_SECONDS = 60.0
FLAT_TOLERANCE = 0.10  # the last RSS may exceed the warmed-up one by this share and still be flat


@dataclass
class Point:
    at: float  # seconds since the load started
    rss_mb: float
    fds: int
    sockets: int
    requests: int


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, ok: bool) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1
        if not ok:
            self.failed[kind] = self.failed.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def _fds(pid: int) -> tuple[int, int]:
    """(open file descriptors, of which sockets) of a process."""
    fd_dir = Path(f"/proc/{pid}/fd")
    count = sockets = 0
    for entry in fd_dir.iterdir():
        count += 1
        try:
            sockets += os.readlink(entry).startswith("socket:")
        except OSError:
            continue
    return count, sockets


def sample(child: Child, started: float, tally: Tally) -> Point:
    fds, sockets = _fds(child.pid)
    return Point(round(time.monotonic() - started, 1), round(child.rss_mb(), 1), fds, sockets, tally.total)


async def _one(session: aiohttp.ClientSession, url: str, key: str, tally: Tally, rng: random.Random) -> None:
    roll = rng.random()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    if roll < 0.45:
        async with session.post(url, data=payloads.chat_request(), headers=headers) as reply:
            await reply.read()
            tally.add("chat", reply.status == 200)
    elif roll < 0.75:
        async with session.post(url, data=payloads.chat_request(stream=True), headers=headers) as reply:
            body = await reply.read()
            tally.add("stream", reply.status == 200 and b"[DONE]" in body)
    elif roll < 0.95:
        # Abandoned mid-stream: read the first event, then drop the connection.
        reply = await session.post(url, data=payloads.chat_request(stream=True), headers=headers)
        try:
            await reply.content.readline()
            tally.add("abandoned", reply.status == 200)
        finally:
            reply.close()
    else:
        bad = {**headers, "authorization": "Bearer sk-sl-not-a-real-key"}
        async with session.post(url, data=payloads.chat_request(), headers=bad) as reply:
            await reply.read()
            tally.add("bad-key", reply.status == 401)


async def _client(url: str, key: str, stop: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < stop:
            try:
                await _one(session, url, key, tally, rng)
            except (aiohttp.ClientError, TimeoutError):
                tally.add("transport-error", False)


async def _drive(args: argparse.Namespace, child: Child, url: str, key: str) -> tuple[list[Point], Tally]:
    tally = Tally()
    started = time.monotonic()
    stop = started + args.duration
    clients = [asyncio.create_task(_client(url, key, stop, tally, seed)) for seed in range(args.clients)]
    points: list[Point] = []
    while time.monotonic() < stop:
        await asyncio.sleep(min(args.every, max(0.0, stop - time.monotonic())))
        points.append(sample(child, started, tally))
        print(f"  {asdict(points[-1])}", file=sys.stderr, flush=True)
    await asyncio.gather(*clients)
    return points, tally


async def _metrics(port: int) -> dict[str, float]:
    """In-flight and queued requests per /metrics, summed over deployments."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as reply:
        text = await reply.text()
    totals = {"sluice_in_flight_requests": 0.0, "sluice_queue_depth": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


def _slope_per_hour(points: list[Point], attr: str) -> float:
    xs = [p.at for p in points]
    ys = [float(getattr(p, attr)) for p in points]
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def report(
    points: list[Point], idle: Point, tally: Tally, metrics: dict[str, float], duration: float
) -> dict[str, Any]:
    warmed = [p for p in points if p.at >= min(WARM_UP_SECONDS, duration / 4)] or points
    first, last = warmed[0], warmed[-1]
    flat = last.rss_mb <= first.rss_mb * (1 + FLAT_TOLERANCE)
    settled = metrics["sluice_in_flight_requests"] == 0 and metrics["sluice_queue_depth"] == 0
    return {
        "duration_s": duration,
        "requests": tally.total,
        "by_kind": tally.sent,
        "failed": tally.failed,
        "rss_mb": {"warmed": first.rss_mb, "last": last.rss_mb, "max": max(p.rss_mb for p in warmed)},
        "rss_slope_mb_per_hour": round(_slope_per_hour(warmed, "rss_mb"), 2),
        "fds": {"warmed": first.fds, "last": last.fds, "max": max(p.fds for p in warmed), "idle_after": idle.fds},
        "sockets_idle_after": idle.sockets,
        "in_flight_after": metrics["sluice_in_flight_requests"],
        "queue_depth_after": metrics["sluice_queue_depth"],
        "memory_flat": flat,
        "pools_idle": settled,
        "samples": [asdict(p) for p in points],
    }


def markdown(result: dict[str, Any]) -> str:
    rss, fds = result["rss_mb"], result["fds"]
    failed = sum(result["failed"].values())
    rows = [
        (
            "requests (chat / stream / abandoned / bad key)",
            "{chat} / {stream} / {abandoned} / {bad}".format(
                chat=result["by_kind"].get("chat", 0),
                stream=result["by_kind"].get("stream", 0),
                abandoned=result["by_kind"].get("abandoned", 0),
                bad=result["by_kind"].get("bad-key", 0),
            ),
        ),
        ("unexpected outcomes", str(failed)),
        ("RSS after warm-up / at the end / highest (MB)", f"{rss['warmed']} / {rss['last']} / {rss['max']}"),
        ("RSS trend (MB per hour)", f"{result['rss_slope_mb_per_hour']:+.2f}"),
        (
            "open fds after warm-up / at the end / highest / idle after",
            f"{fds['warmed']} / {fds['last']} / {fds['max']} / {fds['idle_after']}",
        ),
        ("in flight / queued after the load", f"{result['in_flight_after']:g} / {result['queue_depth_after']:g}"),
        ("memory flat (last within 10% of warmed-up)", "pass" if result["memory_flat"] else "FAIL"),
        ("pools back to idle", "pass" if result["pools_idle"] else "FAIL"),
    ]
    lines = [f"Soak of {result['duration_s']:g} s", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of load (default: an hour)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--json", type=Path, help="where to save the results (default bench/results/soak-<time>.json)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sluice-soak-") as tmp:
        procs = Processes(Path(tmp))
        try:
            pins = Pinning.plan()
            up = start_upstreams(procs, pins, use_nginx=True, frame_gap_ms=1.0)
            (variant,) = find(["sluice"])
            target = start_sluice(procs, pins, up, variant, working_tree())
            assert target.process is not None and target.key is not None
            url = f"http://127.0.0.1:{target.port}/v1/chat/completions"
            points, tally = asyncio.run(_drive(args, target.process, url, target.key))
            time.sleep(7)  # past the keep-alive timeout: idle client connections are closed
            idle = sample(target.process, time.monotonic(), tally)
            metrics = asyncio.run(_metrics(target.port))
        finally:
            procs.stop_all()
    result = report(points, idle, tally, metrics, args.duration)
    path = args.json or REPO_ROOT / "bench" / "results" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(markdown(result))
    return 0 if result["memory_flat"] and result["pools_idle"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
