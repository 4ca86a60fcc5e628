"""OpenAI's published schemas for what is not an answer: the model list (configured and discovered models), error
bodies for 401, 404, 413, 502 and 504, and the error chunk that ends a stream that failed midway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeAnthropic, FakeOpenAI, Fault
from tests.support.openapi import spec_available, validate
from tests.support.server import SluiceServer, make_settings

pytestmark = pytest.mark.skipif(not spec_available(), reason="../shared/specs/openai-openapi.yaml is absent")
QUICK = {"connect": 2, "first_byte": 1, "idle": 1, "total": 10}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SluiceServer, FakeOpenAI, FakeAnthropic]]:
    with FakeOpenAI() as fo, FakeAnthropic() as fa:
        config = {
            "health": {"interval_seconds": 0},
            "server": {"max_body_bytes": 4096},
            "providers": [
                {"name": "oa", "kind": "openai", "base_url": fo.base_url, "discover_models": True, "timeouts": QUICK},
                {"name": "an", "kind": "anthropic", "base_url": fa.url, "timeouts": QUICK},
            ],
            "models": [
                {"name": "gpt", "deployments": [{"provider": "oa", "model": "gpt-fake"}]},
                {"name": "claude", "deployments": [{"provider": "an", "model": "claude-fake"}]},
            ],
            "routing": {"max_attempts": 1},
            "breaker": {"consecutive_failures": 1000, "minimum_calls": 1000},  # failures on purpose here
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
            yield gateway, fo, fa


@pytest.fixture
def http(rig: tuple[SluiceServer, FakeOpenAI, FakeAnthropic]) -> Iterator[httpx.Client]:
    gateway, fo, fa = rig
    fo.reset()
    fa.reset()
    with gateway.client() as client:
        yield client


def chat(model: str = "gpt", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_model_list_and_each_model_match_the_schema(http: httpx.Client) -> None:
    listed = http.get("/v1/models").json()
    validate("ListModelsResponse", listed)
    ids = {m["id"] for m in listed["data"]}
    assert {"gpt", "claude", "gpt-fake", "gpt-fake-mini", "mock-1"} <= ids  # configured, discovered and the mock
    for model_id in ("gpt", "gpt-fake-mini", "claude"):
        validate("Model", http.get(f"/v1/models/{model_id}").json())


def error_of(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    validate("ErrorResponse", body)
    return dict(body["error"])


def test_401_error_matches_the_schema(rig: tuple[SluiceServer, FakeOpenAI, FakeAnthropic]) -> None:
    gateway, fo, _ = rig
    resp = httpx.post(f"{gateway.url}/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer nope"})
    assert error_of(resp, 401)["code"] == "invalid_api_key"
    assert fo.requests == []


def test_404_errors_match_the_schema(http: httpx.Client) -> None:
    assert error_of(http.post("/v1/chat/completions", json=chat("nope")), 404)["code"] == "model_not_found"
    assert error_of(http.get("/v1/models/nope"), 404)["param"] == "model"
    assert error_of(http.get("/v1/no-such-route"), 404)["code"] == "unknown_endpoint"


def test_413_error_matches_the_schema(http: httpx.Client) -> None:
    resp = http.post("/v1/chat/completions", json=chat(user="x" * 8000))
    assert error_of(resp, 413)["code"] == "request_too_large"


@pytest.mark.parametrize("model", ["gpt", "claude"], ids=["passthrough", "translated"])
@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault("status", status=500), 502, "upstream_500"),
        (Fault("refuse"), 502, None),
        (Fault("hang", seconds=5), 504, "timeout"),
    ],
    ids=["upstream-500", "refused", "hang"],
)
def test_upstream_failure_errors_match_the_schema(
    rig: tuple[SluiceServer, FakeOpenAI, FakeAnthropic],
    http: httpx.Client,
    model: str,
    fault: Fault,
    status: int,
    code: str | None,
) -> None:
    _, fo, fa = rig
    (fo if model == "gpt" else fa).enqueue(fault)
    error = error_of(http.post("/v1/chat/completions", json=chat(model)), status)
    assert error["type"] == "upstream_error"
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize("model", ["gpt", "claude"], ids=["passthrough", "translated"])
@pytest.mark.parametrize("kind", ["reset_mid_stream", "in_band_error"])
def test_the_mid_stream_error_chunk_matches_the_schema(
    rig: tuple[SluiceServer, FakeOpenAI, FakeAnthropic], http: httpx.Client, model: str, kind: str
) -> None:
    _, fo, fa = rig
    (fo if model == "gpt" else fa).enqueue(Fault(kind, after_chunks=2))  # type: ignore[arg-type]
    text = http.post("/v1/chat/completions", json=chat(model, stream=True)).text
    payloads = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert payloads and payloads[-1] != "[DONE]", "a failed stream must not end as if complete"
    last = json.loads(payloads[-1])
    validate("ErrorResponse", last)
    for payload in payloads[:-1]:
        validate("CreateChatCompletionStreamResponse", json.loads(payload))
