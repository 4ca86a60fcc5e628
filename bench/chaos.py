"""Chaos run (issue 23): three replicas under mixed traffic through PostgreSQL and Redis outages and a kill -9.

    .venv/bin/python -m bench.chaos            # about 70 s; prints a Markdown summary for docs/benchmarks.md

Three `sluice serve` replicas share a private PostgreSQL and a private Redis (limits in Redis, fail_closed) and a
fake OpenAI upstream that counts the calls it serves (each 10 + 6 tokens, priced so a call costs 0.016). Eight
clients send streamed and non-streamed chat requests round-robin across the replicas while the script, on a fixed
timeline, stops PostgreSQL, hangs it (SIGSTOP), hangs Redis, restarts Redis empty, kills a replica with kill -9
(restarting it on the same data directory) and lowers a key's rpm while Redis is down. Then it checks:

- every refusal is 503 or 429 with Retry-After, never a 500, and no answer took longer than the request deadline;
- usage records = upstream calls (calls cut by the kill are recorded as estimated), none duplicated;
- spend = the sum of the records;
- the rpm lowered during the outage is in force on every replica afterwards.

The private services come from ``tests/support/processes.py`` (the fault tests' own), so it runs from the
repository root with the dev dependencies installed.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from tests.fakes.openai_fake import FakeOpenAI
from tests.fakes.script import Reply
from tests.support.processes import PrivatePostgres, PrivateRedis, SluiceProcess
from tests.support.server import MASTER_KEY

from sluice.store.db import Database
from sluice.store.models import UsageRecord

CLIENTS = 8
REPLICAS = 3
DEADLINE_SECONDS = 5.0  # a refusal or an answer later than this counts as a hang
PRICE = {"input": 1000.0, "output": 1000.0}  # per million tokens: 16 tokens cost 0.016
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: collections.Counter[str] = collections.Counter()
        self.slow: list[float] = []
        self.bad: list[str] = []

    def add(self, outcome: str, took: float, problem: str | None = None) -> None:
        with self.lock:
            self.status[outcome] += 1
            if took > DEADLINE_SECONDS:
                self.slow.append(took)
            if problem:
                self.bad.append(problem)


def _client(replicas: list[SluiceProcess], key: str, stop: threading.Event, tally: Tally, n: int) -> None:
    turn = itertools.count(n)
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            i = next(turn)
            replica = replicas[i % len(replicas)]
            stream = i % 2 == 0
            body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            started = time.monotonic()
            try:
                response = http.post(
                    f"{replica.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
                )
            except httpx.HTTPError as exc:
                tally.add(f"connection ({type(exc).__name__})", time.monotonic() - started)
                time.sleep(0.05)
                continue
            took = time.monotonic() - started
            problem = None
            if response.status_code >= 500 and response.status_code != 503:
                problem = f"{response.status_code}: {response.text[:200]}"
            elif response.status_code in (429, 503) and "retry-after" not in response.headers:
                problem = f"{response.status_code} without Retry-After"
            tally.add(str(response.status_code), took, problem)


async def _usage(url: str) -> tuple[collections.Counter[str], int, int]:
    """Records of the run by outcome (status / error type), distinct ids, and the spend they sum to (nanos)."""
    db = Database(url)
    try:
        async with db.session() as session:
            rows = (
                await session.execute(
                    select(UsageRecord.id, UsageRecord.status, UsageRecord.error_type, UsageRecord.cost_nanos).where(
                        UsageRecord.model == "priced"
                    )
                )
            ).all()
    finally:
        await db.close()
    outcomes = collections.Counter(f"{status} {error or ''}".strip() for _, status, error, _ in rows)
    return outcomes, len({row[0] for row in rows}), sum(row[3] for row in rows)


def _timeline(pg: PrivatePostgres, redis: PrivateRedis, replicas: list[SluiceProcess], key_id: str) -> list[str]:
    log: list[str] = []
    start = time.monotonic()

    def at(second: float, what: str) -> None:
        time.sleep(max(0.0, start + second - time.monotonic()))
        log.append(f"{second:>4.0f} s  {what}")

    at(5, "PostgreSQL stopped (refused)")
    pg.stop()
    at(9, "PostgreSQL started")
    pg.start()
    at(14, "PostgreSQL hung (SIGSTOP)")
    pg.pause()
    at(18, "PostgreSQL resumed")
    pg.resume()
    at(23, "Redis hung (SIGSTOP)")
    redis.pause()
    at(26, "Redis resumed")
    redis.resume()
    at(31, "Redis restarted empty")
    redis.stop()
    redis.start()
    at(36, "replica 0 killed (kill -9)")
    replicas[0].kill(signal.SIGKILL)
    at(38, "replica 0 restarted on the same data directory")
    replicas[0].start()
    at(42, "Redis stopped; rpm of the second key lowered to 2 through replica 1")
    redis.stop()
    with httpx.Client(base_url=replicas[1].url, headers=MASTER, timeout=10) as admin:
        admin.put(f"/admin/v1/limits/key/{key_id}", json={"rpm": 2})
    at(46, "Redis started again")
    redis.start()
    at(52, "traffic stops")
    return log


def run() -> str:
    root = Path(tempfile.mkdtemp(prefix="sluice-chaos-"))
    pg = PrivatePostgres().init()
    redis = PrivateRedis(root / "redis").start()
    fake = FakeOpenAI(
        reply=Reply(text="Hello", prompt_tokens=10, completion_tokens=6, chunks=["Hel", "lo"], delay=0.05)
    ).start()
    replicas: list[SluiceProcess] = []
    try:
        asyncio.run(_migrate(pg.url))
        config: dict[str, Any] = {
            "database_url": pg.url,
            "redis_url": redis.url,
            "limits": {"backend": "redis", "redis_prefix": "chaos.lim", "lease_seconds": 3},
            "database": {"refresh_seconds": 2},
            "providers": [{"name": "fake", "kind": "openai", "base_url": f"{fake.url}/v1", "api_key": "x"}],
            "models": [{"name": "priced", "price": PRICE, "deployments": [{"provider": "fake", "model": "m"}]}],
        }
        for i in range(REPLICAS):
            replicas.append(SluiceProcess(root / f"r{i}", {**config, "data_dir": str(root / f"r{i}" / "data")}))
        for replica in replicas:
            replica.start()
        with httpx.Client(base_url=replicas[0].url, headers=MASTER, timeout=10) as admin:
            chaos = admin.post("/admin/v1/keys", json={"name": "chaos", "workspace_id": "default"}).json()
            key = chaos["key"]
            # Limits make every admission go through Redis (a key without limits never asks it).
            admin.put(f"/admin/v1/limits/key/{chaos['id']}", json={"rpm": 1_000_000, "budget": 10_000})
            limited = admin.post("/admin/v1/keys", json={"name": "limited", "workspace_id": "default"}).json()
        tally = Tally()
        stop = threading.Event()
        clients = [
            threading.Thread(target=_client, args=(replicas, key, stop, tally, n), daemon=True) for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        events = _timeline(pg, redis, replicas, limited["id"])
        stop.set()
        for client in clients:
            client.join(40)
        time.sleep(4)  # one refresh (2 s) and a heartbeat after Redis came back
        rpm_in_force = []
        for replica in replicas:
            answers = [_chat_status(replica, limited["key"]) for _ in range(3)]
            rpm_in_force.append(answers.count(429) >= 1)
        with httpx.Client(base_url=replicas[2].url, headers=MASTER, timeout=10) as admin:
            counted = admin.get(f"/admin/v1/limits/key/{chaos['id']}/spend").json()["spent"]
        for replica in replicas:
            replica.stop()  # ships each spool
        outcomes, ids, cost = asyncio.run(_usage(pg.url))
        upstream = sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))
        return _report(events, tally, upstream, outcomes, ids, cost, counted, rpm_in_force)
    finally:
        for replica in replicas:
            replica.kill()
        fake.stop()
        redis.stop()
        pg.destroy()


def _chat_status(replica: SluiceProcess, key: str) -> int:
    body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(f"{replica.url}/v1/chat/completions", json=body, headers=headers, timeout=10).status_code


async def _migrate(url: str) -> None:
    db = Database(url)
    await db.migrate()
    await db.close()


def _report(
    events: list[str],
    tally: Tally,
    upstream: int,
    outcomes: collections.Counter[str],
    ids: int,
    cost: int,
    counted: float,
    rpm_in_force: list[bool],
) -> str:
    answered = sum(n for status, n in tally.status.items() if status.startswith("2"))
    lines = ["Timeline:", "", *[f"    {e}" for e in events], "", "| measure | value |", "|---|---|"]
    lines.append(f"| requests answered (2xx) | {answered} |")
    for status, n in sorted(tally.status.items()):
        if not status.startswith("2"):
            lines.append(f"| refused / failed: {status} | {n} |")
    lines.append(f"| refusals without Retry-After, or 5xx other than 503 | {len(tally.bad)} |")
    lines.append(f"| answers slower than {DEADLINE_SECONDS:g} s | {len(tally.slow)} |")
    lines.append(f"| upstream calls (the fake upstream's count) | {upstream} |")
    total = sum(outcomes.values())
    lines.append(f"| usage records | {total} ({ids} distinct ids) |")
    for outcome, n in sorted(outcomes.items()):
        lines.append(f"| records with status {outcome} | {n} |")
    lines.append(f"| spend, sum of the records | {cost / 1e9:.3f} |")
    lines.append(f"| spend the limits counted (admin API, before the last spools shipped) | {counted:.3f} |")
    lines.append(
        f"| rpm lowered during the Redis outage in force on replicas | {sum(rpm_in_force)}/{len(rpm_in_force)} |"
    )
    if tally.bad:
        lines += ["", "Problems:", *[f"- {b}" for b in tally.bad[:10]]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
