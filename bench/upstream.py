"""The fast mock upstream: a raw asyncio protocol on uvloop that speaks just enough HTTP/1.1.

It answers every POST with a canned OpenAI answer and ignores the request except for its ``"stream": true``
flag: a ``chat.completion`` JSON body, or an SSE stream sent with chunked transfer encoding whose first frame
leaves at once and whose later frames follow ``--frame-gap-ms`` apart (so a proxy that buffered would show it).
Keep-alive and pipelining work; bodies must carry Content-Length. It exists to never be the bottleneck, so
it does no per-request allocation beyond slicing its input buffer.

Run: ``python -m bench.upstream --port 9000 [--frame-gap-ms 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
from collections import deque
from typing import cast

import uvloop

from bench import payloads

_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
MAX_HEAD = 64 * 1024


def _json_response() -> bytes:
    body = payloads.chat_completion()
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: keep-alive\r\n\r\n"
    )
    return head + body


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
JSON_RESPONSE = _json_response()
STREAM_CHUNKS = [f"{len(f):x}\r\n".encode() + f + b"\r\n" for f in payloads.sse_frames()]
CHUNKED_END = b"0\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests off the buffer and answer them in order."""

    def __init__(self, frame_gap: float) -> None:
        self.frame_gap = frame_gap
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.streams: deque[bool | None] = deque()  # requests parsed while a stream was still being sent
        self.streaming = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._parse_one():
            pass

    def _parse_one(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD and self.transport is not None:
                self.transport.close()
            return False
        head = bytes(self.buffer[: end + 2])
        match = _CONTENT_LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        if match is None and _CHUNKED.search(head):
            self._send(LENGTH_REQUIRED)
            self.close_after = True
            return False
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.close_after = _CLOSE.search(head) is not None
        if not head.startswith(b"POST "):
            self._answer(None)
        else:
            self._answer(_STREAM_FLAG.search(body) is not None)
        return True

    def _answer(self, stream: bool | None) -> None:
        """Answer now, or after the stream in progress: responses on one connection leave in order."""
        if self.streaming:
            self.streams.append(stream)
            return
        if stream is None:
            self._send(NOT_FOUND)
        elif stream:
            self.streaming = True
            asyncio.get_running_loop().create_task(self._stream())
        else:
            self._send(JSON_RESPONSE)
        if self.close_after and not self.streaming and self.transport is not None:
            self.transport.close()

    async def _stream(self) -> None:
        self._send(STREAM_HEAD + STREAM_CHUNKS[0])
        for chunk in STREAM_CHUNKS[1:]:
            if self.frame_gap:
                await asyncio.sleep(self.frame_gap)
            if self.transport is None:
                return
            self._send(chunk)
        self._send(CHUNKED_END)
        self.streaming = False
        while self.streams and not self.streaming:
            self._answer(self.streams.popleft())
        if self.close_after and not self.streaming and self.transport is not None:
            self.transport.close()

    def _send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


async def serve(host: str, port: int, frame_gap: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(frame_gap), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fast mock OpenAI upstream for the benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frame-gap-ms", type=float, default=1.0, help="delay between stream frames after the first")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.frame_gap_ms / 1000))


if __name__ == "__main__":
    main()
