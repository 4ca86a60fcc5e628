"""Incremental stream framing: Server-Sent Events and newline-delimited JSON.

Upstreams may split their stream anywhere (one byte at a time, in the middle of a UTF-8 sequence), so both parsers
buffer until a whole frame is present and hand out frames as soon as they are complete. Buffers are bounded: a
frame larger than ``max_frame`` is a protocol error, not a reason to grow memory without end.
"""

from __future__ import annotations

from dataclasses import dataclass


class FramingError(ValueError):
    """The byte stream is not valid SSE/NDJSON (or a frame is over the size bound)."""


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes
    raw: bytes  # the event exactly as received, terminator included, for pass-through forwarding


class SSEParser:
    """Split an SSE byte stream into events (WHATWG rules: ``event:``/``data:`` fields, blank-line separated)."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = 8 * 1024 * 1024) -> None:
        self._buf = b""
        self.max_frame = max_frame

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # Normalise CRLF and lone CR line endings; a CR at the very end may be half of a CRLF, so keep it.
            tail = b"\r" if buf.endswith(b"\r") else b""
            body = buf[:-1] if tail else buf
            buf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start : end + 2]
            start = end + 2
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        rest = buf[start:]
        if len(rest) > self.max_frame:
            raise FramingError(f"stream event larger than {self.max_frame} bytes")
        self._buf = rest
        return events

    def flush(self) -> SSEEvent | None:
        """At end of stream: the last event if the upstream omitted its closing blank line."""
        rest, self._buf = self._buf.strip(b"\r\n"), b""
        if not rest:
            return None
        return _parse_block(rest + b"\n\n")

    @property
    def pending(self) -> bool:
        return bool(self._buf.strip())


def _parse_block(block: bytes) -> SSEEvent | None:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    if not data and event is None:
        return None  # a comment-only block (keep-alive)
    return SSEEvent(event, b"\n".join(data), block)


class NDJSONParser:
    """Split a newline-delimited JSON stream into lines (Ollama's streaming format)."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = 8 * 1024 * 1024) -> None:
        self._buf = b""
        self.max_frame = max_frame

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        rest = lines.pop()
        if len(rest) > self.max_frame:
            raise FramingError(f"stream line larger than {self.max_frame} bytes")
        self._buf = rest
        return [line for line in (ln.strip() for ln in lines) if line]

    def flush(self) -> bytes | None:
        rest, self._buf = self._buf.strip(), b""
        return rest or None


def sse_frame(data: bytes, event: str | None = None) -> bytes:
    """Encode one SSE event (``data`` must be a single line, as JSON without newlines is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
