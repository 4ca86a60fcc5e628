"""The queue in front of a deployment, through HTTP on one real Sluice (in-process backend) and a fake upstream.

The deployment has capacity 1; the fake OpenAI upstream counts the requests it has in flight and notices a
client (Sluice) that leaves. Clients that "go away" are raw sockets closed mid-request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes import FakeOpenAI, Fault, Reply
from tests.support.keys import NewKey, create_key
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

CLASSES = [
    {"name": "interactive", "weight": 3},
    {"name": "standard", "weight": 2},
    {"name": "batch", "weight": 1, "max_queue": 1, "max_wait": 2.0},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "providers": [{"name": "up", "kind": "openai", "base_url": upstream.base_url}],
        "models": [{"name": "one", "deployments": [{"provider": "up", "model": "gpt-fake", "capacity": 1}]}],
        "scheduling": {"aging_seconds": 1.5, "classes": CLASSES},
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(upstream: FakeOpenAI, gateway: SluiceServer) -> Iterator[None]:
    upstream.reset()
    upstream.reply = Reply()
    yield
    assert upstream.wait_for(lambda: upstream.in_flight == 0, timeout=10)
    assert wait_until(lambda: snapshot(gateway)["in_flight"] == 0)


@pytest.fixture(scope="module")
def keys(gateway: SluiceServer) -> dict[str, NewKey]:
    async def make() -> dict[str, NewKey]:
        db = gateway.services.db
        return {
            "standard": await create_key(db, "std"),
            "other": await create_key(db, "other", workspace_id="default"),
            "batch": await create_key(db, "bulk", priority="batch"),
        }

    made: dict[str, NewKey] = gateway.call(make())
    return made


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "one", "messages": [{"role": "user", "content": "Hi"}], **extra}


def post(
    gateway: SluiceServer, key: str = MASTER_KEY, path: str = "/v1/chat/completions", **extra: Any
) -> httpx.Response:
    body = extra.pop("body", None) or chat(**extra)
    headers = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    return httpx.post(gateway.url + path, json=body, headers=headers, timeout=30)


def snapshot(gateway: SluiceServer) -> dict[str, Any]:
    data = gateway.call(gateway.services.gateway.scheduler.snapshot())
    (deployment,) = [d for d in data["deployments"] if d["deployment"].startswith("one#")] or [
        {"waiting": 0, "in_flight": 0}
    ]
    return dict(deployment)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def hold_slot(gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, seconds: float) -> Future[Any]:
    """A master-key request that holds the only slot for ``seconds`` (it is running once this returns)."""
    upstream.enqueue(Reply(delay=seconds))
    held = pool.submit(post, gateway)
    assert upstream.wait_for(lambda: upstream.in_flight == 1)
    return held


def raw_request(gateway: SluiceServer, key: str, body: dict[str, Any]) -> socket.socket:
    """A client that sends a request and can then vanish (close its socket) at a moment of the test's choosing."""
    data = orjson.dumps(body)
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


# --- admission --------------------------------------------------------------------------------------------------------


def test_queued_requests_carry_their_place_at_enqueue_and_their_wait(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor
) -> None:
    upstream.reply = Reply(delay=0.3)
    first = pool.submit(post, gateway)
    assert upstream.wait_for(lambda: upstream.in_flight == 1)
    second = pool.submit(post, gateway)
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 1)
    third = pool.submit(post, gateway)
    responses = [f.result() for f in (first, second, third)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["x-sluice-queue-position"] for r in responses] == ["0", "1", "2"]
    waits = [float(r.headers["x-sluice-queue-wait-ms"]) for r in responses]
    assert waits[0] == 0.0 and 0 < waits[1] < waits[2]
    assert upstream.max_in_flight == 1


def test_a_caller_sees_its_own_waiting_requests_and_no_one_elses(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey]
) -> None:
    held = hold_slot(gateway, upstream, pool, 1.0)
    waiting = pool.submit(post, gateway, keys["standard"].secret)

    def listed(key: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{gateway.url}/v1/queue", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    assert wait_until(lambda: len(listed(keys["standard"].secret)) == 1)
    (entry,) = listed(keys["standard"].secret)
    assert entry["model"] == "one" and entry["priority"] == "standard" and entry["position"] == 1
    assert entry["waited_ms"] >= 0 and entry["deployment"].startswith("one#0")
    assert listed(keys["other"].secret) == [] and listed(MASTER_KEY) == []  # the master's request runs
    assert held.result().status_code == 200 and waiting.result().status_code == 200


def test_the_admin_snapshot_shows_depth_in_flight_and_waits(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey]
) -> None:
    held = hold_slot(gateway, upstream, pool, 1.0)
    waiting = pool.submit(post, gateway, keys["standard"].secret)
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 1)
    snap = snapshot(gateway)
    assert snap["capacity"] == 1 and snap["in_flight"] == 1 and snap["oldest_wait_ms"] >= 0
    assert {c["name"]: c["waiting"] for c in snap["classes"]} == {"interactive": 0, "standard": 1, "batch": 0}
    assert held.result().status_code == 200 and waiting.result().status_code == 200


# --- overload ---------------------------------------------------------------------------------------------------------


def test_a_full_class_is_refused_at_once_in_the_callers_format_while_a_higher_class_passes(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey]
) -> None:
    batch = keys["batch"].secret
    held = hold_slot(gateway, upstream, pool, 1.0)
    queued = pool.submit(post, gateway, batch)
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 1)
    refused = post(gateway, batch)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error" and refused.json()["error"]["code"] == "queue_full"
    anthropic = post(
        gateway,
        batch,
        "/v1/messages",
        body={"model": "one", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert anthropic.status_code == 429 and int(anthropic.headers["retry-after"]) >= 1
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "rate_limit_error"
    higher = post(gateway)  # interactive (the master key): its class has room, so it waits and is served first
    assert higher.status_code == 200 and higher.headers["x-sluice-queue-position"] == "1"
    assert held.result().status_code == 200 and queued.result().status_code == 200
    assert upstream.attempts == 3


def test_waiting_past_the_class_max_wait_is_refused_with_retry_after(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey]
) -> None:
    held = hold_slot(gateway, upstream, pool, 3.0)
    refused = post(gateway, keys["batch"].secret)  # batch may wait 2 s
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "queue_timeout"
    assert snapshot(gateway)["waiting"] == 0
    assert held.result().status_code == 200 and upstream.attempts == 1


# --- clients that leave -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_queued_client_that_leaves_is_out_of_line_at_once(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey], stream: bool
) -> None:
    held = hold_slot(gateway, upstream, pool, 1.5)
    client = raw_request(gateway, keys["standard"].secret, chat(stream=stream))
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 1)
    client.close()
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 0, timeout=1.0)
    assert held.result().status_code == 200
    assert upstream.attempts == 1  # the one that left never reached the upstream


@pytest.mark.parametrize("stream", [False, True])
def test_a_running_client_that_leaves_aborts_the_upstream_and_its_slot_goes_to_the_next(
    gateway: SluiceServer, upstream: FakeOpenAI, pool: ThreadPoolExecutor, keys: dict[str, NewKey], stream: bool
) -> None:
    upstream.enqueue(Fault("endless", interval=0.05) if stream else Fault("hang", seconds=30))
    client = raw_request(gateway, keys["standard"].secret, chat(stream=stream))
    assert upstream.wait_for(lambda: upstream.in_flight == 1)
    if stream:
        client.recv(1024)  # the answer has started streaming
    nxt = pool.submit(post, gateway, keys["other"].secret)
    assert wait_until(lambda: snapshot(gateway)["waiting"] == 1)
    left = time.monotonic()
    client.close()
    assert upstream.wait_for(lambda: len(upstream.disconnects) == 1, timeout=1.0)
    assert upstream.disconnects[0].disconnected_at is not None and upstream.disconnects[0].disconnected_at - left < 1.0
    assert upstream.wait_for(lambda: upstream.attempts == 2, timeout=1.0)  # the waiter got the slot
    assert nxt.result().status_code == 200 and nxt.result().headers["x-sluice-queue-position"] == "1"
    assert upstream.max_in_flight == 1
