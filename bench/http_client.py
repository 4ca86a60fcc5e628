"""A minimal blocking HTTP/1.1 client for timing single requests (readiness probes, time to first chunk).

Blocking sockets and no framework keep the client's own cost small and identical for every target; it reuses
its connection (keep-alive) and decodes Content-Length and chunked bodies, noting when the first complete SSE
event of the body arrived.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


class HttpProtocolError(RuntimeError):
    pass


@dataclass
class Reply:
    status: int
    body: bytes
    sent_at: float  # perf_counter just before the request was written
    first_event_at: float | None  # the first complete SSE event ("...\n\n") of the body had arrived
    done_at: float


class HttpConnection:
    """One keep-alive connection to 127.0.0.1:port; reconnects when the server closed it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def __enter__(self) -> HttpConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        sent_at = time.perf_counter()
        try:
            self._sock.sendall(request)
            return self._read_reply(sent_at)
        except (OSError, HttpProtocolError):
            self.close()
            raise

    def _read_reply(self, sent_at: float) -> Reply:
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpProtocolError(f"not an HTTP response: {status_line!r}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = bytearray()
        first: list[float] = []
        if headers.get("transfer-encoding", "").lower() == "chunked":
            self._read_chunked(body, first)
        else:
            body += self._read_exact(int(headers.get("content-length", "0")))
            if b"\n\n" in body:
                first.append(time.perf_counter())
        done_at = time.perf_counter()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(int(parts[1]), bytes(body), sent_at, first[0] if first else None, done_at)

    def _read_chunked(self, body: bytearray, first: list[float]) -> None:
        while True:
            size_line = self._read_until(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0], 16)
            except ValueError:
                raise HttpProtocolError(f"bad chunk size line {size_line!r}") from None
            if size == 0:
                while self._read_until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return
            body += self._read_exact(size + 2)[:-2]
            if not first and b"\n\n" in body:
                first.append(time.perf_counter())

    def _recv(self) -> None:
        assert self._sock is not None
        data = self._sock.recv(65536)
        if not data:
            raise HttpProtocolError("the server closed the connection mid-response")
        self._buf += data

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buf.find(marker)) < 0:
            self._recv()
        out = bytes(self._buf[:end])
        del self._buf[: end + len(marker)]
        return out

    def _read_exact(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._recv()
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out
