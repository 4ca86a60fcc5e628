"""Structured logs: JSON lines (or a readable console format on a terminal), never secrets or prompts.

Log events carry only the fields their callers pass; the pipeline passes ids, names, counts and timings, never
request bodies, keys or tokens. ``redact`` is a last line of defence for fields whose names say they are secret.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from structlog.types import EventDict, WrappedLogger

from sluice.config import LoggingConfig

SECRET_FIELDS = frozenset({"authorization", "api_key", "key", "password", "token", "secret", "master_key"})


def redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for name in SECRET_FIELDS.intersection(event):
        event[name] = "[redacted]"
    return event


def _orjson_dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(cfg: LoggingConfig) -> None:
    level = getattr(logging, cfg.level.upper())
    console = cfg.format == "console" or (cfg.format == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True)
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the standard library (uvicorn, alembic, sqlalchemy) follow the same level.
    logging.basicConfig(
        level=max(level, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    for noisy in ("alembic", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
