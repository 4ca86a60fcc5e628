"""SECURITY.md case 35: an upstream that sends an endless or huge answer is capped and aborted with an error."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeOpenAI, Fault
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

CAP = 64 * 1024
HEADERS = {"authorization": f"Bearer {MASTER_KEY}", "x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
MESSAGES = [{"role": "user", "content": "go on forever"}]


def settings(tmp_path: Path, upstream: FakeOpenAI) -> object:
    return make_settings(
        tmp_path,
        {
            "providers": [
                {
                    "name": "up",
                    "kind": "openai",
                    "base_url": upstream.url + "/v1",
                    "api_key": "k",
                    "max_response_bytes": CAP,
                }
            ],
            "models": [{"name": "m", "deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}],
            "routing": {"max_attempts": 1},
        },
    )


@pytest.mark.parametrize(
    ("path", "body", "error_marker"),
    [
        ("/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True}, b'"error"'),
        ("/v1/messages", {"model": "m", "max_tokens": 10, "messages": MESSAGES, "stream": True}, b"event: error"),
        ("/api/chat", {"model": "m", "messages": MESSAGES}, b'"error"'),
    ],
)
def test_endless_stream_is_cut_with_an_error_event(
    tmp_path: Path, path: str, body: dict[str, object], error_marker: bytes
) -> None:
    with FakeOpenAI() as upstream, SluiceServer(settings(tmp_path, upstream)) as server:  # type: ignore[arg-type]
        upstream.enqueue(Fault("endless", interval=0.001))
        received = b""
        with httpx.stream("POST", server.url + path, json=body, headers=HEADERS, timeout=60) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
                assert len(received) < 50 * CAP  # bounded: the gateway cut it off
        assert error_marker in received and b"exceeded" in received
        assert upstream.wait_for(lambda: len(upstream.disconnects) == 1, timeout=5)


def test_huge_body_is_refused_with_a_502(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream, SluiceServer(settings(tmp_path, upstream)) as server:  # type: ignore[arg-type]
        upstream.enqueue(Fault("huge", size=4 * CAP))
        response = httpx.post(
            f"{server.url}/v1/chat/completions", headers=HEADERS, json={"model": "m", "messages": MESSAGES}, timeout=60
        )
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "response_too_large"
