"""Issue 16.4, SECURITY.md cases 19 and 38: every route outside the proxy (admin API, auth, health, UI) bounds the
request body while reading it: an honest Content-Length over the bound, a chunked body that crosses it, or a length
that lies, get 413 in the route's own shape before the rest is read, and nothing is parsed.

Before: an unauthenticated 150 MiB POST to the login route was read and parsed (+315 MB RSS)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.server import SluiceServer, make_settings

LIMIT = 64 * 1024
LOGIN = "/admin/v1/auth/login"
SEND_AT_MOST = 64 * 1024 * 1024  # a chunked body is offered up to this; the refusal must come long before


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SluiceServer]:
    config = {"server": {"max_admin_body_bytes": LIMIT}, "health": {"interval_seconds": 0}}
    with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("gw")), config)) as gateway:
        yield gateway


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, read until it is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    return status, headers, body[:length]


def head(path: str, extra: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


@pytest.mark.parametrize("path", [LOGIN, "/admin/v1/auth/register", "/admin/v1/keys", "/health/live"])
def test_an_honest_length_over_the_bound_is_refused_before_the_body_is_sent(gateway: SluiceServer, path: str) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head(path, f"Content-Length: {150 * 1024 * 1024}\r\n"))  # and no body at all
        status, headers, body = read_response(sock)
    assert status == 413
    assert headers["connection"] == "close"
    error = orjson.loads(body)["error"]
    assert error["type"] == "payload_too_large"
    assert str(LIMIT) in error["message"]


def test_a_chunked_body_is_refused_once_it_crosses_the_bound(gateway: SluiceServer) -> None:
    piece = b"[" + b"1," * 32767 + b"1]"  # 64 KiB of JSON-looking bytes
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head(LOGIN, "Transfer-Encoding: chunked\r\n"))
        try:
            while sent < SEND_AT_MOST:
                sock.sendall(frame)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed while we were still sending: what it should do
        status, _headers, body = read_response(sock)
    assert sent < SEND_AT_MOST, "the gateway read a 64 MiB body to the end"
    assert status == 413
    assert orjson.loads(body)["error"]["code"] == "request_too_large"


def test_a_length_that_lies_is_never_read_past(gateway: SluiceServer) -> None:
    """A length smaller than the body sent: the route reads only what was declared, and what follows is not a
    request (the connection is refused, never a 5xx, nothing buffered)."""
    declared = b'{"email": "nobody@example.com", "password": "wrong"}'
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head(LOGIN, f"Content-Length: {len(declared)}\r\n") + declared + b"x" * (4 * LIMIT))
        status, _headers, body = read_response(sock)
        # uvicorn answers the declared request (401) or, having parsed the rest as a request first, refuses it.
        assert status in (400, 401), body
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):  # and then closes: the extra bytes are never taken as a body
                pass


def test_the_ui_gets_its_refusal_as_text(gateway: SluiceServer) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head("/ui/login", f"Content-Length: {LIMIT + 1}\r\n"))
        status, headers, body = read_response(sock)
    assert status == 413
    assert headers["content-type"].startswith("text/plain")
    assert b"larger than the limit" in body


def test_a_body_within_the_bound_is_served(gateway: SluiceServer) -> None:
    body = b'{"email": "nobody@example.com", "password": "wrong"}' + b" " * (LIMIT // 2)
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        resp = http.post(LOGIN, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 401, resp.text


def test_the_proxy_routes_keep_their_own_larger_bound(gateway: SluiceServer) -> None:
    body = {"model": "nothing", "messages": [{"role": "user", "content": "p" * (2 * LIMIT)}]}
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        resp = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {gateway.master_key}"})
    assert resp.status_code != 413, resp.text
