"""The access line's own JSON path renders exactly what structlog's chain renders for the same fields."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog

from sluice.config import LoggingConfig
from sluice.observability.access import ACCESS, FLUSH_INTERVAL
from sluice.observability.logging import configure_logging

FIELDS: dict[str, Any] = {
    "request_id": "abc123",
    "usage_id": "u1",
    "surface": "openai",
    "model": "m",
    "principal_kind": "key",
    "user_id": None,
    "stream": False,
    "status": 200,
    "estimated": True,
    "cost_nanos": 12_000,
    "latency_ms": 1.234,
    "attempts": 1,
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def stream() -> Iterator[io.TextIOWrapper]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    yield out
    configure_logging(LoggingConfig(level="warning", format="json"))  # as the test session's conftest left it


def lines(stream: io.TextIOWrapper) -> list[str]:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode().splitlines()


def test_the_direct_line_equals_the_structlog_line_but_for_the_time(stream: io.TextIOWrapper) -> None:
    configure_logging(LoggingConfig(level="info", format="json"), stream=stream)
    assert ACCESS.enabled
    ACCESS.write(dict(FIELDS))
    structlog.get_logger("sluice.access").info("request", **FIELDS)
    direct, chained = (orjson.loads(line) for line in lines(stream))
    assert list(direct) == list(chained) == [*FIELDS, "event", "level", "timestamp"]
    assert TIMESTAMP.fullmatch(direct["timestamp"]) and TIMESTAMP.fullmatch(chained["timestamp"])
    del direct["timestamp"], chained["timestamp"]
    assert direct == chained == {**FIELDS, "event": "request", "level": "info"}


def test_above_info_the_line_is_not_wanted(stream: io.TextIOWrapper) -> None:
    configure_logging(LoggingConfig(level="warning", format="json"), stream=stream)
    assert not ACCESS.enabled


def test_on_a_console_the_line_goes_through_structlog(stream: io.TextIOWrapper) -> None:
    configure_logging(LoggingConfig(level="info", format="console"), stream=stream)
    ACCESS.write(dict(FIELDS))
    (line,) = lines(stream)
    assert re.search(r"\[info\s*\] request\b.*\brequest_id=abc123", line)


def test_a_text_stream_without_bytes_gets_json_through_structlog() -> None:
    out = io.StringIO()
    try:
        configure_logging(LoggingConfig(level="info", format="json"), stream=out)
        ACCESS.write(dict(FIELDS))
        line = orjson.loads(out.getvalue().splitlines()[0])
        assert line["event"] == "request" and line["request_id"] == "abc123"
    finally:
        configure_logging(LoggingConfig(level="warning", format="json"))


class RecordingRaw(io.RawIOBase):
    """A raw stream that keeps each system-call-sized write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)


async def _until(written: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll (the flush timer fires after FLUSH_INTERVAL, later on a loaded machine) with a deadline."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not written():
        assert asyncio.get_running_loop().time() < deadline, f"not written within {seconds} s"
        await asyncio.sleep(FLUSH_INTERVAL / 4)


async def test_in_a_running_loop_lines_go_out_together_within_the_flush_interval() -> None:
    raw = RecordingRaw()
    out = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")
    try:
        configure_logging(LoggingConfig(level="info", format="json"), stream=out)
        ACCESS.write({**FIELDS, "request_id": "first"})
        await asyncio.sleep(0)
        ACCESS.write({**FIELDS, "request_id": "second"})
        assert raw.writes == []  # buffered: the loop turned, the interval has not passed
        await _until(lambda: len(raw.writes) >= 1)
        assert len(raw.writes) == 1  # both lines in one write
        ACCESS.write({**FIELDS, "request_id": "third"})
        structlog.get_logger("sluice.test").warning("between")  # structlog flushes the shared buffer itself
        ACCESS.write({**FIELDS, "request_id": "fourth"})
        await _until(lambda: b"fourth" in b"".join(raw.writes))
        written = [orjson.loads(line) for line in b"".join(raw.writes).splitlines()]
        assert [line.get("request_id", line["event"]) for line in written] == [
            "first",
            "second",
            "third",
            "between",
            "fourth",
        ]
    finally:
        configure_logging(LoggingConfig(level="warning", format="json"))


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    raw = RecordingRaw()
    out = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")
    try:
        configure_logging(LoggingConfig(level="info", format="json"), stream=out)
        ACCESS.write(dict(FIELDS))
        assert len(raw.writes) == 1
        ACCESS.write(dict(FIELDS))
        assert len(raw.writes) == 2
    finally:
        configure_logging(LoggingConfig(level="warning", format="json"))
