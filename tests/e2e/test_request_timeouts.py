"""A request's own timeouts through HTTP: each one shortens the deployment's, none lengthens it, bad ones are 400s.

Also each deployment's own ``total``: it holds for requests that deployment serves, measured from arrival, and a
deployment whose total is already spent is not tried.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeOpenAI, Fault
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

HEADERS = {"authorization": f"Bearer {MASTER_KEY}", "x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
MESSAGES = [{"role": "user", "content": "hi"}]
LOOSE = {"connect": 5, "first_byte": 5, "idle": 5, "total": 30}
TIGHT = {"connect": 0.3, "first_byte": 0.3, "idle": 0.3, "total": 30}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def blackhole() -> Iterator[str]:
    """A port whose connects hang: it listens with no room in its backlog, which one idle connection fills."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def _model(name: str, provider: str, **deployment: Any) -> dict[str, Any]:
    return {"name": name, "deployments": [{"provider": provider, "model": "gpt-fake", **deployment}]}


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, blackhole: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {
        "providers": [
            {"name": "loose", "kind": "openai", "base_url": fake.base_url, "timeouts": LOOSE},
            {"name": "tight", "kind": "openai", "base_url": fake.base_url, "timeouts": TIGHT},
            {"name": "hole-loose", "kind": "openai", "base_url": blackhole, "timeouts": LOOSE},
            {"name": "hole-tight", "kind": "openai", "base_url": blackhole, "timeouts": TIGHT},
        ],
        "routing": {"max_attempts": 1},
        "models": [
            _model("loose", "loose"),
            _model("tight", "tight"),
            _model("hole-loose", "hole-loose"),
            _model("hole-tight", "hole-tight"),
            {
                "name": "short-first",
                "deployments": [
                    {"provider": "loose", "model": "gpt-fake", "timeouts": {**LOOSE, "total": 0.5}},
                    {"provider": "loose", "model": "gpt-fake", "order": 1},
                ],
            },
            {
                "name": "spent-second",
                "routing": {"max_attempts": 2},
                "deployments": [
                    {"provider": "tight", "model": "gpt-fake"},
                    {"provider": "loose", "model": "gpt-fake", "order": 1, "timeouts": {**LOOSE, "total": 0.2}},
                ],
            },
        ],
    }
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as server:
        yield server


@pytest.fixture(autouse=True)
def clean(fake: FakeOpenAI) -> None:
    fake.reset()


def chat(gateway: SluiceServer, model: str, headers: dict[str, str], stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={**HEADERS, **headers}, timeout=30)


def error(resp: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = resp.json()["error"]
    return found


# --- first byte ------------------------------------------------------------------------------------------------


def test_a_shorter_first_byte_cuts_sooner(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("hang", seconds=10))
    resp = chat(gateway, "loose", {"x-sluice-timeout-first-byte": "0.3"})
    assert resp.status_code == 504
    assert "within 0.3 s" in error(resp)["message"]


def test_a_longer_first_byte_does_not_lengthen_the_deployments(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("hang", seconds=10))
    resp = chat(gateway, "tight", {"x-sluice-timeout-first-byte": "20"})
    assert resp.status_code == 504
    assert "within 0.3 s" in error(resp)["message"]


# --- idle ------------------------------------------------------------------------------------------------------


def test_a_shorter_idle_cuts_a_stalled_stream(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("stall", after_chunks=1, seconds=3))
    resp = chat(gateway, "loose", {"x-sluice-timeout-idle": "0.3"}, stream=True)
    assert resp.status_code == 200  # the stream had started: it ends with an error event
    assert b'"error"' in resp.content and b"nothing for 0.3 s" in resp.content
    assert b"[DONE]" not in resp.content


def test_a_longer_idle_does_not_lengthen_the_deployments(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("stall", after_chunks=1, seconds=3))
    resp = chat(gateway, "tight", {"x-sluice-timeout-idle": "20"}, stream=True)
    assert b'"error"' in resp.content and b"nothing for 0.3 s" in resp.content


# --- connect ---------------------------------------------------------------------------------------------------


def test_a_shorter_connect_cuts_sooner(gateway: SluiceServer) -> None:
    resp = chat(gateway, "hole-loose", {"x-sluice-timeout-connect": "0.3"})
    assert resp.status_code == 504
    assert error(resp)["code"] == "connect_timeout" and "after 0.3 s" in error(resp)["message"]


def test_a_longer_connect_does_not_lengthen_the_deployments(gateway: SluiceServer) -> None:
    resp = chat(gateway, "hole-tight", {"x-sluice-timeout-connect": "20"})
    assert resp.status_code == 504
    assert error(resp)["code"] == "connect_timeout" and "after 0.3 s" in error(resp)["message"]


# --- total -----------------------------------------------------------------------------------------------------


def test_a_shorter_total_cuts_before_the_first_byte_deadline(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    fake.enqueue(Fault("hang", seconds=10))
    resp = chat(gateway, "loose", {"x-sluice-timeout": "0.4"})
    assert resp.status_code == 504 and error(resp)["code"] == "total_timeout"


def test_each_deployment_keeps_its_own_total(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    """The first deployment's total (0.5 s) holds although its sibling's is 30 s and first_byte is 5 s."""
    fake.enqueue(Fault("hang", seconds=10))
    resp = chat(gateway, "short-first", {"x-sluice-timeout": "20"})
    assert resp.status_code == 504 and error(resp)["code"] == "total_timeout"
    assert fake.attempts == 1


def test_a_deployment_whose_total_is_spent_is_not_tried(gateway: SluiceServer, fake: FakeOpenAI) -> None:
    """After the first deployment's 0.3 s, the second one's 0.2 s total is spent: the retry goes to the first."""
    fake.enqueue(Fault("hang", seconds=10), Fault("hang", seconds=10))
    resp = chat(gateway, "spent-second", {})
    assert resp.status_code == 504 and "within 0.3 s" in error(resp)["message"]  # the second would say 5 s
    assert fake.attempts == 2


# --- bad values ------------------------------------------------------------------------------------------------

SURFACES = {
    "openai": ("/v1/chat/completions", {"model": "loose", "messages": MESSAGES}),
    "anthropic": ("/v1/messages", {"model": "loose", "max_tokens": 10, "messages": MESSAGES}),
    "ollama": ("/api/chat", {"model": "loose", "messages": MESSAGES, "stream": False}),
}


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-sluice-timeout", "soon"),
        ("x-sluice-timeout", "0"),
        ("x-sluice-timeout-connect", "-1"),
        ("x-sluice-timeout-first-byte", "nan"),
        ("x-sluice-timeout-idle", "inf"),
    ],
)
def test_a_bad_timeout_is_a_400_in_the_callers_format_naming_the_header(
    gateway: SluiceServer, fake: FakeOpenAI, surface: str, header: str, value: str
) -> None:
    path, body = SURFACES[surface]
    resp = httpx.post(gateway.url + path, json=body, headers={**HEADERS, header: value}, timeout=10)
    assert resp.status_code == 400
    payload = resp.json()
    if surface == "openai":
        assert payload["error"]["param"] == header and payload["error"]["code"] == "invalid_timeout"
    elif surface == "anthropic":
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
        assert header in payload["error"]["message"]
    else:
        assert header in payload["error"]
    assert fake.attempts == 0
