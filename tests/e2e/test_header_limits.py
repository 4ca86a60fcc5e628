"""SECURITY.md case 21: too many or too large request headers get 431 in the caller's own error shape, on the proxy
routes and the FastAPI app alike, and nothing reaches an upstream."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fakes import FakeOpenAI
from tests.support.server import SluiceServer, make_settings

MAX_COUNT = 32
MAX_BYTES = 4096


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SluiceServer, FakeOpenAI]]:
    with FakeOpenAI() as fake:
        config = {
            "server": {"max_header_count": MAX_COUNT, "max_header_bytes": MAX_BYTES},
            "providers": [{"name": "oa", "kind": "openai", "base_url": fake.base_url}],
            "models": [{"name": "gpt", "deployments": [{"provider": "oa", "model": "gpt-fake"}]}],
            "health": {"interval_seconds": 0},  # no background model-list probes among what the fake records
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
            yield gateway, fake


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")))) as gateway:
        yield gateway


CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


def padded(count: int) -> list[tuple[str, str]]:
    return [(f"x-pad-{i}", "v") for i in range(count)]


def send(gateway: SluiceServer, path: str, extra: list[tuple[str, str]], method: str = "POST") -> httpx.Response:
    headers = [("authorization", f"Bearer {gateway.master_key}"), ("anthropic-version", "2023-06-01"), *extra]
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        body = {**CHAT, "max_tokens": 5} if method == "POST" else None
        return http.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("too_much", ["count", "bytes"])
@pytest.mark.parametrize(
    ("path", "method", "shape"),
    [
        ("/v1/chat/completions", "POST", "openai"),
        ("/v1/messages", "POST", "anthropic"),
        ("/api/chat", "POST", "ollama"),
        ("/admin/v1/users", "GET", "admin"),
        ("/health", "GET", "admin"),
    ],
)
def test_too_many_or_too_large_headers_are_431_in_the_callers_shape(
    rig: tuple[SluiceServer, FakeOpenAI], path: str, method: str, shape: str, too_much: str
) -> None:
    gateway, fake = rig
    before = len(fake.requests)
    extra = padded(MAX_COUNT) if too_much == "count" else [("x-big", "a" * MAX_BYTES)]
    resp = send(gateway, path, extra, method)
    assert resp.status_code == 431, resp.text
    body = resp.json()
    message = {
        "openai": lambda: body["error"]["message"],
        "anthropic": lambda: body["type"] == "error" and body["error"]["message"],
        "ollama": lambda: body["error"],
        "admin": lambda: body["error"]["type"] == "headers_too_large" and body["error"]["message"],
    }[shape]()
    assert isinstance(message, str) and ("headers" in message)
    assert "a" * 100 not in resp.text, "the oversized value must not be echoed"
    if shape == "openai":
        assert body["error"]["code"] == "request_header_fields_too_large"
    assert resp.headers["x-request-id"]
    assert len(fake.requests) == before, "a refused request reached the upstream"


def test_headers_within_the_limits_are_served(rig: tuple[SluiceServer, FakeOpenAI]) -> None:
    gateway, fake = rig
    with httpx.Client(base_url=gateway.url) as http:
        baseline = len(http.build_request("POST", "/v1/chat/completions", json=CHAT).headers) + 2
    # exactly at the count limit, with one large header well within the byte limit
    resp = send(gateway, "/v1/chat/completions", [*padded(MAX_COUNT - baseline - 1), ("x-big", "b" * 2000)])
    assert resp.status_code == 200, resp.text
    assert fake.requests[-1].path == "/v1/chat/completions"


def test_the_defaults_refuse_what_the_audit_sent(defaults: SluiceServer) -> None:
    """A 200 KB header and 5,000 headers were both answered 200 before the limits existed."""
    for extra in ([("x-big", "a" * 200_000)], padded(5000)):
        resp = send(defaults, "/v1/chat/completions", extra)
        assert resp.status_code == 431
    ok = send(defaults, "/v1/chat/completions", padded(50))
    assert ok.status_code == 404  # past the header check: the default config has no model "gpt"


def _send_until_answered(gateway: SluiceServer, start: bytes, filler: bytes, at_most: int) -> tuple[int, bytes]:
    """Send ``start`` then ``filler`` bytes until the server answers (or ``at_most`` are sent); the bytes sent and
    the answer."""
    sent = 0
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(start)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < at_most:
                sock.sendall(filler)
                sent += len(filler)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return sent, answer


@pytest.mark.parametrize(
    "start",
    [
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ",
        b"GET /health/live?",
        b"POST /v1/chat/completions HTTP/1.1\r\n",
    ],
    ids=["one-huge-value", "huge-url", "endless-headers"],
)
def test_a_64_mib_header_is_refused_while_it_arrives_not_after(defaults: SluiceServer, start: bytes) -> None:
    """Issue 16.11: the parser buffered a 64 MiB header before the 431 (the whole of it had to arrive first)."""
    filler = b"X-Pad: " + b"a" * 65520 + b"\r\n" if start.endswith(b"\r\n") else b"a" * 65536
    sent, answer = _send_until_answered(defaults, start, filler, 64 * 1024 * 1024)
    assert sent < 16 * 1024 * 1024, f"{sent} bytes of headers were read before the refusal"
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"headers" in answer and b"aaaa" not in answer


def test_pipelined_requests_with_large_bodies_are_not_taken_for_large_headers(defaults: SluiceServer) -> None:
    """The header count covers only reads in which no request began: a read that ends one request's body and
    starts the next one's headers is not counted against the next one."""
    body = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "p" * 300_000}]})
    one = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {defaults.master_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", defaults.port), timeout=10) as sock:
        sock.sendall(one * 3)
        answers = b""
        while answers.count(b"HTTP/1.1 ") < 3:
            chunk = sock.recv(65536)
            assert chunk, answers
            answers += chunk
    assert answers.count(b"HTTP/1.1 404") == 3, answers  # past every check: the default config has no model "gpt"
