"""Structured logs: JSON lines (or a readable console format on a terminal), never secrets or prompts.

Log events carry only the fields their callers pass; the pipeline passes ids, names, counts and timings, never
request bodies, keys or tokens. ``redact`` is a last line of defence for fields whose names say they are secret.

Two paths lead to the same output. Sluice's own events go straight from structlog to the stream (in JSON mode as
bytes, rendered by orjson: the access line is written once per request, so it skips the standard library's
machinery, and in this mode structlog's as well, see access.py). Records from libraries that log through the
standard library (uvicorn, alembic, aiohttp, asyncio) go through one handler whose ``ProcessorFormatter`` runs
the same processors and renderer, so a JSON log is JSON on every line and a console log is readable on every
line. Both carry the current request's id.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from sluice.config import LoggingConfig
from sluice.observability.access import ACCESS
from sluice.observability.request_id import add_request_id

SECRET_FIELDS = frozenset({"authorization", "api_key", "key", "password", "token", "secret", "master_key"})

# Libraries that are chatty below WARNING (every SQL statement, every AMQP frame): held at WARNING at least.
QUIET_LIBRARIES = ("alembic", "aiosqlite", "sqlalchemy", "asyncio", "aio_pika", "aiormq", "httpcore", "httpx")


def redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    # Seven lookups, not one per field of the event (the access line has thirty).
    for name in SECRET_FIELDS:
        if name in event:
            event[name] = "[redacted]"
    return event


class UTCTimestamp:
    """``timestamp``: ISO 8601 in UTC with microseconds, as structlog's TimeStamper(fmt="iso", utc=True) writes it.

    Formatting a datetime for every line cost more than rendering the rest of the access line; the part up to the
    second is formatted once per second here and the microseconds appended.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _orjson_text(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _orjson_bytes(obj: Any, **_kw: Any) -> bytes:
    return orjson.dumps(obj, default=str)


class _SluiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (and replaces when called again; others are left alone)."""


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def is_console(cfg: LoggingConfig, stream: TextIO) -> bool:
    """``console``, or ``auto`` with the stream attached to a terminal."""
    return cfg.format == "console" or (cfg.format == "auto" and _is_terminal(stream))


def configure_logging(cfg: LoggingConfig, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's logging alike (once per process, before serving)."""
    out = stream if stream is not None else sys.stderr
    level = getattr(logging, cfg.level.upper())
    console = is_console(cfg, out)
    timestamp = UTCTimestamp()
    shared: list[Processor] = [add_request_id, structlog.processors.add_log_level, timestamp, redact]
    text_renderer: Processor
    native: list[Processor]
    factory: Any
    access_enabled = level <= logging.INFO
    ACCESS.configure(access_enabled)
    if console:
        # The console renderer formats exceptions itself (format_exc_info before it would only flatten them).
        text_renderer = structlog.dev.ConsoleRenderer(colors=_is_terminal(out))
        native = [*shared, text_renderer]
        factory = structlog.WriteLoggerFactory(file=out)
        tail: list[Processor] = [text_renderer]
    else:
        text_renderer = structlog.processors.JSONRenderer(serializer=_orjson_text)
        tail = [structlog.processors.format_exc_info, text_renderer]
        binary = getattr(out, "buffer", None)
        if binary is not None:
            native = [*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer(_orjson_bytes)]
            factory = structlog.BytesLoggerFactory(file=binary)
            ACCESS.configure(access_enabled, binary, timestamp)  # the access line skips the chain (access.py)
        else:
            native = [*shared, *tail]
            factory = structlog.WriteLoggerFactory(file=out)
    structlog.configure(
        processors=native,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    handler = _SluiceHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _SluiceHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
