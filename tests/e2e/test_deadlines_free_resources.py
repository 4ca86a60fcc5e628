"""SECURITY.md case 24 on the smallest pool: an upstream that hangs, or answers without end, gets the caller a 504 at
its deadline, and the deployment's one queue slot and one upstream connection are free again for the next call.

The provider holds a single pooled connection and the deployment a capacity of 1, so anything the failed call kept
would make the next one wait and fail. The fake closes its connection after every answer (``keep_alive = False``):
a connection still open is one the gateway holds. Before issue 16.2's fix, a body read cut by the total deadline
left its connection open (the cancellation did not close it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeOpenAI, Fault
from tests.support.server import SluiceServer, make_settings

TIMEOUTS = {"connect": 1, "first_byte": 0.5, "idle": 0.5, "total": 1.5}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SluiceServer, FakeOpenAI]]:
    with FakeOpenAI() as fake:
        fake.keep_alive = False
        config = {
            "health": {"interval_seconds": 0},
            "routing": {"max_attempts": 1},  # the deadline's own 504, not a retry's answer
            "providers": [{"name": "oa", "kind": "openai", "base_url": fake.base_url, "max_connections": 1}],
            "models": [
                {
                    "name": "one",
                    "deployments": [{"provider": "oa", "model": "gpt-fake", "capacity": 1, "timeouts": TIMEOUTS}],
                }
            ],
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
            yield gateway, fake


def call(gateway: SluiceServer, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": "one", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        return http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {gateway.master_key}"})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("fault", "code", "bound"),
    [
        (Fault("hang", seconds=30), "timeout", TIMEOUTS["first_byte"]),  # no headers within the first-byte deadline
        (Fault("endless", interval=0.05), None, TIMEOUTS["total"]),  # a body that never ends: total or size bound
    ],
    ids=["hang", "endless"],
)
def test_a_call_cut_at_its_deadline_gives_back_its_slot_and_connection(
    rig: tuple[SluiceServer, FakeOpenAI], fault: Fault, code: str | None, bound: float, stream: bool
) -> None:
    gateway, fake = rig
    fake.reset()
    fake.enqueue(fault)
    started = time.monotonic()
    cut = call(gateway, stream)
    took = time.monotonic() - started
    if stream and fault.kind == "endless":
        # The stream had started: it ends with an error event at the total deadline, never as if complete.
        assert cut.status_code == 200 and "error" in cut.text and "[DONE]" not in cut.text
    else:
        assert cut.status_code == 504, cut.text
        if code is not None:
            assert cut.json()["error"]["code"] == code
    assert took < bound + 2, f"cut after {took:.2f} s, the deadline is {bound:g} s"
    freed = fake.wait_for(lambda: fake.in_flight == 0 and fake.open_connections == 0, timeout=2)
    assert freed, f"the upstream connection is still held (open={fake.open_connections}, in_flight={fake.in_flight})"
    served = call(gateway, stream)  # one slot, one pooled connection: both must be free again
    assert served.status_code == 200, served.text
