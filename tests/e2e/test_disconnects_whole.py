"""SECURITY.md case 29 and issue 16.2: a client that leaves a *non-streamed* call stops the upstream.

The upstream sees its connection close within 1 s of the client leaving, whether the gateway was still waiting for
the answer's headers (``hang``) or already reading a body that has not finished (``endless``: valid JSON whitespace
forever), on every surface and upstream kind, pass-through and translated. Before the fix the body read ignored the
cancellation: the upstream connection stayed open for minutes, and two abandoned calls filled a 2-connection pool.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes import FakeOpenAI, Fault
from tests.fakes.server import FakeUpstream
from tests.support.rig import Rig, every_kind
from tests.support.server import SluiceServer, make_settings

ABORT_BOUND = 1.0  # seconds from the client leaving to the upstream seeing it (SECURITY.md case 29)
HEADERS_SEEN = 0.2  # the gateway has the answer's headers this long after the fake got the request (loopback)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with every_kind(Path(tmp_path_factory.mktemp("gw"))) as rig:
        yield rig


def request_for(surface: str, model: str) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": "Tell me everything."}]
    if surface == "openai":
        return "/v1/chat/completions", {"model": model, "messages": messages}
    if surface == "responses":
        return "/v1/responses", {"model": model, "input": "Tell me everything."}
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 100, "messages": messages}
    return "/api/chat", {"model": model, "messages": messages, "stream": False}


def send_and_leave(rig: Rig, fake: FakeUpstream, path: str, body: dict[str, Any], wait_for_body: bool) -> float:
    """Send the call on a raw socket, close it once the upstream is answering, and return when it left."""
    raw = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {rig.gateway.master_key}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", rig.gateway.port), timeout=5) as sock:
        sock.sendall(head + raw)
        assert fake.wait_for(lambda: fake.attempts == 1, timeout=3)
        if wait_for_body:
            received = fake.requests[-1].received_at
            # Polled, not slept: the fake answers headers at once, so by then the gateway is reading the body.
            assert fake.wait_for(lambda: time.monotonic() - received > HEADERS_SEEN, timeout=1)
    return time.monotonic()


PAIRS = [
    ("openai", "openai"),
    ("openai", "anthropic"),
    ("openai", "ollama"),
    ("anthropic", "anthropic"),
    ("anthropic", "openai"),
    ("anthropic", "ollama"),
    ("ollama", "ollama"),
    ("ollama", "openai"),
    ("ollama", "anthropic"),
    ("responses", "openai"),
    ("responses", "anthropic"),
    ("responses", "ollama"),
    ("responses", "openai-responses"),
]


@pytest.mark.parametrize("fault", ["endless", "hang"])
@pytest.mark.parametrize(("surface", "upstream"), PAIRS)
def test_client_leaving_a_whole_answer_closes_the_upstream_within_a_second(
    rig: Rig, surface: str, upstream: str, fault: str
) -> None:
    fake = rig.fakes["openai" if upstream == "openai-responses" else upstream]
    fake.reset()
    fake.enqueue(Fault("endless", interval=0.01) if fault == "endless" else Fault("hang", seconds=30))
    path, body = request_for(surface, f"up-{upstream}")
    left_at = send_and_leave(rig, fake, path, body, wait_for_body=fault == "endless")
    seen = fake.wait_for(lambda: len(fake.disconnects) == 1, timeout=5)
    assert seen, f"the upstream never saw the client leave (in_flight={fake.in_flight})"
    gone = fake.disconnects[0].disconnected_at
    assert gone is not None
    assert gone - left_at < ABORT_BOUND, f"closed {gone - left_at:.2f} s after the client left"
    assert fake.wait_for(lambda: fake.in_flight == 0, timeout=1)


def test_two_abandoned_calls_do_not_exhaust_a_two_connection_pool(tmp_path: Path) -> None:
    """The outside audit's figure: two abandoned calls held both connections and every later call got 504."""
    with FakeOpenAI() as fake:
        config = {
            "health": {"interval_seconds": 0},
            "providers": [{"name": "oa", "kind": "openai", "base_url": fake.base_url, "max_connections": 2}],
            "models": [
                {
                    "name": "two",
                    "deployments": [{"provider": "oa", "model": "gpt-fake"}],
                }
            ],
        }
        with SluiceServer(make_settings(tmp_path, config)) as gateway:
            rig = Rig(gateway, {"openai": fake})
            path, body = request_for("openai", "two")
            for n in (1, 2):
                fake.enqueue(Fault("endless", interval=0.01))
                send_and_leave(rig, fake, path, body, wait_for_body=True)
                left = fake.wait_for(lambda: len(fake.disconnects) == 1 and fake.in_flight == 0, timeout=3)
                assert left, f"abandoned call {n} still holds its upstream connection"
                fake.reset()
            with httpx.Client(base_url=gateway.url, timeout=10) as http:
                resp = http.post(path, json=body, headers={"Authorization": f"Bearer {gateway.master_key}"})
            assert resp.status_code == 200, resp.text
