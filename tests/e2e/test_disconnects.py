"""SECURITY.md case 29: a client that leaves mid-stream closes the upstream connection within 1 s, on the translated
path (the Responses API's included) and on the Anthropic and Ollama surfaces (OpenAI pass-through has its own
test), and the call is settled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import Fault
from tests.support.rig import Rig, every_kind

ABORT_BOUND = 1.0  # seconds from the client leaving to the upstream seeing it (SECURITY.md case 29)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with every_kind(Path(tmp_path_factory.mktemp("gw"))) as rig:
        yield rig


def request_for(surface: str, model: str) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": "Tell me everything."}]
    if surface == "openai":
        return "/v1/chat/completions", {"model": model, "messages": messages, "stream": True}
    if surface == "responses":
        return "/v1/responses", {"model": model, "input": "Tell me everything.", "stream": True}
    if surface == "anthropic":
        return "/v1/messages", {"model": model, "max_tokens": 100, "messages": messages, "stream": True}
    return "/api/chat", {"model": model, "messages": messages}  # Ollama streams by default


@pytest.mark.parametrize(
    ("surface", "upstream"),
    [
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
        ("responses", "openai-responses"),  # passed through to an upstream serving the Responses API
    ],
)
def test_client_leaving_mid_stream_closes_the_upstream_within_a_second(rig: Rig, surface: str, upstream: str) -> None:
    fake = rig.fakes["openai" if upstream == "openai-responses" else upstream]
    fake.reset()
    fake.enqueue(Fault("endless", interval=0.01))
    path, body = request_for(surface, f"up-{upstream}")
    headers = {"Authorization": f"Bearer {rig.gateway.master_key}", "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=rig.gateway.url, timeout=5) as http,
        http.stream("POST", path, json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        received = [next(lines) for _ in range(6)]
        assert any(line.strip() for line in received)
    left_at = time.monotonic()
    assert fake.wait_for(lambda: len(fake.disconnects) == 1, timeout=3), "the upstream never saw the client leave"
    gone = fake.disconnects[0].disconnected_at
    assert gone is not None and gone - left_at < ABORT_BOUND
    assert fake.wait_for(lambda: fake.in_flight == 0, timeout=1)
