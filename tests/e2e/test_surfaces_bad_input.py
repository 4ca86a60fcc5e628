"""Bad input on the Anthropic and Ollama surfaces: that API's error shape and status, and nothing upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import FakeAnthropic, FakeOllama
from tests.support.server import SluiceServer, make_settings


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SluiceServer, FakeAnthropic, FakeOllama]]:
    with FakeAnthropic() as fa, FakeOllama() as fl:
        config = {
            "providers": [
                {"name": "an", "kind": "anthropic", "base_url": fa.url},
                {"name": "ol", "kind": "ollama", "base_url": fl.url},
            ],
            "models": [
                {"name": "claude", "deployments": [{"provider": "an", "model": "claude-fake"}]},
                {"name": "llama", "deployments": [{"provider": "ol", "model": "llama-fake:latest"}]},
            ],
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
            yield gateway, fa, fl


def anthropic_error(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    return dict(body["error"])


def messages_body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("body", "status", "kind", "mentions"),
    [
        (b"{not json", 400, "invalid_request_error", "not valid JSON"),
        (
            {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
            400,
            "invalid_request_error",
            "max_tokens",
        ),
        (messages_body(messages=[]), 400, "invalid_request_error", "messages"),
        (
            messages_body(messages=[{"role": "system", "content": "x"}]),
            400,
            "invalid_request_error",
            "messages[0].role",
        ),
        (messages_body(model="nope"), 404, "not_found_error", "nope"),
        (messages_body(max_tokens=-3), 400, "invalid_request_error", "max_tokens"),
        (messages_body(api_base="http://evil"), 400, "invalid_request_error", "api_base"),
    ],
)
def test_anthropic_surface_errors(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama], body: Any, status: int, kind: str, mentions: str
) -> None:
    gateway, fake, _ = rig
    before = fake.attempts
    headers = {"x-api-key": gateway.master_key, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gateway.url, headers=headers) as http:
        resp = (
            http.post("/v1/messages", content=body) if isinstance(body, bytes) else http.post("/v1/messages", json=body)
        )
    assert resp.status_code == status, resp.text
    error = anthropic_error(resp)
    assert error["type"] == kind and mentions in error["message"]
    assert fake.attempts == before, "a refused request reached the upstream"


def test_anthropic_surface_authentication(rig: tuple[SluiceServer, FakeAnthropic, FakeOllama]) -> None:
    gateway, _, _ = rig
    with httpx.Client(base_url=gateway.url) as http:
        for headers in ({}, {"x-api-key": "sk-sl-wrong"}, {"Authorization": "Bearer nope"}):
            resp = http.post("/v1/messages", json=messages_body(), headers=headers)
            assert resp.status_code == 401 and anthropic_error(resp)["type"] == "authentication_error"
        ok = http.post("/v1/messages", json=messages_body(), headers={"x-api-key": gateway.master_key})
        bearer = http.post(
            "/v1/messages", json=messages_body(), headers={"Authorization": f"Bearer {gateway.master_key}"}
        )
    assert ok.status_code == 200 and bearer.status_code == 200


def test_unknown_messages_path_answers_in_anthropic_shape(rig: tuple[SluiceServer, FakeAnthropic, FakeOllama]) -> None:
    gateway, _, _ = rig
    resp = httpx.post(f"{gateway.url}/v1/messages/batches", json={}, headers={"x-api-key": gateway.master_key})
    assert resp.status_code == 404 and anthropic_error(resp)["type"] == "not_found_error"


def test_translation_refuses_what_the_upstream_cannot_express(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama],
) -> None:
    gateway, fake, _ = rig
    before = fake.attempts
    with gateway.client() as http:
        resp = http.post(
            "/v1/chat/completions", json={"model": "claude", "n": 2, "messages": [{"role": "user", "content": "hi"}]}
        )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "n"
    assert fake.attempts == before


# --- Ollama -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "mentions"),
    [
        ("/api/chat", b"{", 400, "not valid JSON"),
        ("/api/chat", {"messages": []}, 400, "model"),
        ("/api/chat", {"model": "nope", "messages": []}, 404, "nope"),
        ("/api/chat", {"model": "llama", "messages": [{"role": "user", "content": 1}]}, 400, "messages[0].content"),
        (
            "/api/generate",
            {"model": "llama", "prompt": "x", "options": {"temperature": "hot"}},
            400,
            "options.temperature",
        ),
        ("/api/embed", {"model": "llama", "input": []}, 400, "input"),
    ],
)
def test_ollama_surface_errors(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama], path: str, body: Any, status: int, mentions: str
) -> None:
    gateway, _, fake = rig
    before = fake.attempts
    with gateway.client() as http:
        resp = http.post(path, content=body) if isinstance(body, bytes) else http.post(path, json=body)
    assert resp.status_code == status, resp.text
    assert set(resp.json()) == {"error"} and mentions in resp.json()["error"]
    assert fake.attempts == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:abc"),
        ("HEAD", "/api/blobs/sha256:abc"),
    ],
)
def test_model_management_is_refused_and_never_forwarded(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama], method: str, path: str
) -> None:
    gateway, _, fake = rig
    before = len(fake.requests)
    with gateway.client() as http:
        resp = http.request(method, path, json={"model": "llama"})
    assert resp.status_code == 403
    if method != "HEAD":
        assert "not available through Sluice" in resp.json()["error"]
    assert len(fake.requests) == before


def test_ollama_auth_and_the_open_probes(rig: tuple[SluiceServer, FakeAnthropic, FakeOllama]) -> None:
    gateway, _, _ = rig
    with httpx.Client(base_url=gateway.url) as http:
        assert http.get("/api/tags").status_code == 401
        assert http.get("/api/version").json() == {"version": "0.12.0"}
        assert http.get("/").text == "Ollama is running"
        assert http.head("/").status_code == 200
        assert http.get("/api/unknown").json() == {"error": "Unknown endpoint GET /api/unknown."}


# --- never a 500 --------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
anthropic_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["claude", "mock-1"]) | json_values},
    optional={
        "max_tokens": st.integers(-5, 100) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant"]) | json_values}, optional={"content": json_values}
            ),
            max_size=3,
        )
        | json_values,
        "system": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "stream": st.booleans() | json_values,
        "thinking": json_values,
        "stop_sequences": json_values,
        "temperature": json_values,
    },
)
ollama_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["llama", "mock-1"]) | json_values},
    optional={
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "tool"]) | json_values},
                optional={"content": json_values, "images": json_values, "tool_calls": json_values},
            ),
            max_size=3,
        )
        | json_values,
        "options": json_values,
        "format": json_values,
        "tools": json_values,
        "think": json_values,
        "stream": st.just(False) | json_values,
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=anthropic_bodies)
def test_random_messages_bodies_never_cause_a_server_error(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama], body: dict[str, Any]
) -> None:
    gateway, _, _ = rig
    resp = httpx.post(f"{gateway.url}/v1/messages", content=json.dumps(body), headers={"x-api-key": gateway.master_key})
    assert resp.status_code in (200, 400, 404), resp.text
    if resp.status_code != 200:
        anthropic_error(resp)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=ollama_bodies)
def test_random_ollama_chat_bodies_never_cause_a_server_error(
    rig: tuple[SluiceServer, FakeAnthropic, FakeOllama], body: dict[str, Any]
) -> None:
    gateway, _, _ = rig
    with gateway.client() as http:
        resp = http.post("/api/chat", content=json.dumps(body))
    assert resp.status_code in (200, 400, 404), resp.text
    if resp.status_code != 200:
        assert set(resp.json()) == {"error"}
