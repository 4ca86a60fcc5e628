"""Bad input on the OpenAI surface: the right status and an OpenAI-shaped error naming the problem, never a 500."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import SluiceServer


@pytest.fixture
def http(mock_gateway: SluiceServer) -> Iterator[httpx.Client]:
    with mock_gateway.client() as client:
        yield client


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_invalid_json_is_400(http: httpx.Client) -> None:
    resp = http.post(
        "/v1/chat/completions", content=b'{"model": "mock-1", ', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "invalid_json"


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b""])
def test_body_that_is_not_an_object_is_400(http: httpx.Client, body: bytes) -> None:
    resp = http.post("/v1/chat/completions", content=body)
    assert resp.status_code == 400
    assert "JSON object" in error_of(resp)["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock-1"}, "messages"),
        (chat(messages=[]), "messages"),
        (chat(model=7), "model"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (chat(messages=["hi"]), "messages[0]"),
        (chat(temperature="hot"), "temperature"),
        (chat(temperature=9), "temperature"),
        (chat(max_tokens=-1), "max_tokens"),
        (chat(max_tokens=10**12), "max_tokens"),
        (chat(max_tokens="many"), "max_tokens"),
        (chat(n=10_000), "n"),
        (chat(stream="yes"), "stream"),
        (chat(stream_options={"include_usage": "please"}), "stream_options.include_usage"),
        (chat(api_base="http://169.254.169.254/"), "api_base"),
        (chat(base_url="http://evil.example/"), "base_url"),
        (chat(api_key="sk-other"), "api_key"),
    ],
)
def test_bad_field_is_400_naming_it(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    error = error_of(resp)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_translation_path_validates_nested_fields(http: httpx.Client) -> None:
    body = chat(tools=[{"type": "function", "function": {"description": "no name"}}])
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert error_of(resp)["param"] == "tools[0].function.name"


def test_unknown_model_is_404(http: httpx.Client) -> None:
    resp = http.post("/v1/chat/completions", json=chat(model="gpt-nope"))
    assert resp.status_code == 404
    error = error_of(resp)
    assert error["code"] == "model_not_found" and "gpt-nope" in error["message"]


def test_deeply_nested_json_is_400(http: httpx.Client) -> None:
    body = b'{"model": "mock-1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert http.post("/v1/chat/completions", content=body).status_code == 400


def test_invalid_utf8_is_400(http: httpx.Client) -> None:
    body = b'{"model": "mock-1", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    resp = http.post("/v1/chat/completions", content=body)
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "invalid_json"


def test_body_over_limit_is_413_with_honest_length(http: httpx.Client, mock_gateway: SluiceServer) -> None:
    limit = mock_gateway.settings.server.max_body_bytes
    resp = http.post("/v1/chat/completions", content=b"x" * (limit + 1))
    assert resp.status_code == 413
    assert error_of(resp)["code"] == "request_too_large"


def test_body_over_limit_is_413_when_chunked(http: httpx.Client, mock_gateway: SluiceServer) -> None:
    limit = mock_gateway.settings.server.max_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    resp = http.post("/v1/chat/completions", content=chunks())
    assert resp.status_code == 413


def test_body_over_limit_is_413_when_content_length_lies(mock_gateway: SluiceServer) -> None:
    """A client that declares a small body and keeps sending: the server stops at the declared length."""
    limit = mock_gateway.settings.server.max_body_bytes
    with socket.create_connection(("127.0.0.1", mock_gateway.port), timeout=5) as sock:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {mock_gateway.master_key}\r\nContent-Length: {limit + 10}\r\n\r\n"
        )
        sock.sendall(head.encode())
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


# --- authentication -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer sk-sl-wrong"},
        {"Authorization": "Bearer ' OR 1=1 --"},
        {"Authorization": "Bearer " + "A" * 8000},
        {"x-api-key": "garbage\u00e9"},
    ],
)
def test_missing_or_bad_key_is_401_and_not_echoed(mock_gateway: SluiceServer, headers: dict[str, str]) -> None:
    raw_headers = {k: v.encode("utf-8") for k, v in headers.items()}  # non-ASCII bytes on the wire, on purpose
    with httpx.Client(base_url=mock_gateway.url) as http:
        resp = http.post("/v1/chat/completions", json=chat(), headers=raw_headers)
    assert resp.status_code == 401
    error = error_of(resp)
    assert error["type"] == "invalid_request_error"
    for value in headers.values():
        scheme, _, token = value.partition(" ")
        presented = token or (value if scheme not in ("Bearer", "Basic") else "")
        if presented:
            assert presented not in resp.text


def test_auth_is_checked_before_the_body_is_parsed(mock_gateway: SluiceServer) -> None:
    with httpx.Client(base_url=mock_gateway.url) as http:
        resp = http.post("/v1/chat/completions", content=b"not json")
    assert resp.status_code == 401


# --- never a 500 --------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]) | json_values},
    optional={"content": json_values, "tool_calls": json_values, "tool_call_id": json_values, "name": json_values},
)
chat_body = st.fixed_dictionaries(
    {"model": st.just("mock-1") | json_values},
    optional={
        "messages": st.lists(message, max_size=3) | json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "response_format": json_values,
        "max_tokens": json_values,
        "n": st.integers(-2, 4) | json_values,
        "stop": json_values,
        "stream": st.booleans() | json_values,
        "temperature": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=chat_body)
def test_random_chat_bodies_never_cause_a_server_error(http: httpx.Client, body: dict[str, Any]) -> None:
    resp = http.post("/v1/chat/completions", content=json.dumps(body))
    assert resp.status_code in (200, 400, 404), resp.text
    if resp.status_code != 200:
        error_of(resp)
