"""SSE and NDJSON framing: the same frames however the bytes are split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.codecs.framing import FramingError, NDJSONParser, SSEParser


def feed_in_pieces(parser: SSEParser, data: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    events = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events.extend((e.event, e.data) for e in parser.feed(data[start:cut]))
        start = cut
    return events


STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b": keep-alive comment\n\n"
    b'data: {"b": "caf\xc3\xa9"}\n\n'
    b"event: multi\ndata: line1\ndata: line2\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    (None, b'{"b": "caf\xc3\xa9"}'),
    ("multi", b"line1\nline2"),
    (None, b"[DONE]"),
]


def test_sse_whole_stream() -> None:
    assert feed_in_pieces(SSEParser(), STREAM, []) == EXPECTED


def test_sse_one_byte_at_a_time() -> None:
    assert feed_in_pieces(SSEParser(), STREAM, list(range(len(STREAM)))) == EXPECTED


@given(st.lists(st.integers(0, len(STREAM)), max_size=20))
def test_sse_any_split_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_in_pieces(SSEParser(), STREAM, cuts) == EXPECTED


@given(st.lists(st.integers(0, len(STREAM)), max_size=20))
def test_sse_crlf_line_endings_at_any_split(cuts: list[int]) -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    assert feed_in_pieces(SSEParser(), crlf, cuts) == EXPECTED


def test_sse_raw_keeps_the_original_bytes_for_pass_through() -> None:
    events = SSEParser().feed(b"data: x\n\ndata: y\n\n")
    assert [e.raw for e in events] == [b"data: x\n\n", b"data: y\n\n"]


def test_sse_flush_returns_an_unterminated_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: tail") == []
    last = parser.flush()
    assert last is not None and last.data == b"tail"


def test_sse_frame_over_the_bound_is_an_error() -> None:
    parser = SSEParser(max_frame=64)
    with pytest.raises(FramingError):
        parser.feed(b"data: " + b"x" * 100)


@given(st.lists(st.integers(0, 60), max_size=10))
def test_ndjson_any_split(cuts: list[int]) -> None:
    data = b'{"a":1}\n{"b":2}\n\n{"c":3}\n'
    parser = NDJSONParser()
    lines: list[bytes] = []
    start = 0
    for cut in [*sorted(set(c for c in cuts if c <= len(data))), len(data)]:
        lines.extend(parser.feed(data[start:cut]))
        start = cut
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert parser.flush() is None


def test_ndjson_flush_returns_a_last_line_without_newline() -> None:
    parser = NDJSONParser()
    assert parser.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert parser.feed(b":2}") == []
    assert parser.flush() == b'{"b":2}'
