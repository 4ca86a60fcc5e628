"""The access line: one per request, so the one log line whose cost is paid on the hot path.

Through structlog an access line cost about 18 µs of a request's CPU in a loaded ``sluice serve`` (the bound
logger, the context copy, five processors and the renderer, for a line whose fields are fixed), about a tenth of
everything Sluice does per request. In JSON mode to a byte stream — how ``sluice serve`` runs outside a terminal —
:data:`ACCESS` renders the line itself, as the structlog chain renders every other line: the same keys in the
same order, then ``event``, ``level`` and ``timestamp``, one orjson line. It needs none of the chain's other
steps: the line names its own ``request_id``, carries no exception, and its fields (ids, labels, counts, timings)
are never secret. In every other mode (console, a text stream) it hands the fields to structlog.

When the log level is above ``info`` the line is not built at all (:attr:`AccessLog.enabled`).

Lines written while the event loop runs are flushed together, at most :data:`FLUSH_INTERVAL` after the first one
waiting (sooner when the stream's buffer fills), rather than once per line: each flush is a ``write`` system
call, which cost a loaded server more than the rest of the line (a flush per loop turn still came to about one
per request once answers went out as soon as they were complete). Every other line (structlog's, the standard
library's) goes through the same buffered stream, so the order of lines is kept; the stream is flushed when the
process exits, and a process killed outright loses at most that interval of access lines (the usage records,
written before each answer completes, are the durable account). Outside a running loop (the CLI, tests) each
line is flushed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson
import structlog
from structlog.types import EventDict

EVENT = "request"
FLUSH_INTERVAL = 0.1  # seconds an access line may wait in the buffer

Stamp = Callable[[Any, str, EventDict], EventDict]  # a structlog processor that adds the timestamp


class AccessLog:
    __slots__ = ("_file", "_flush_loop", "_logger", "_stamp", "enabled")

    def __init__(self) -> None:
        self.enabled = True  # False when the level filters info lines out
        self._file: BinaryIO | None = None  # set: JSON lines rendered here directly; None: through structlog
        self._stamp: Stamp | None = None
        self._logger: Any = structlog.get_logger("sluice.access")
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def configure(self, enabled: bool, file: BinaryIO | None = None, stamp: Stamp | None = None) -> None:
        """Where lines go (``configure_logging`` calls this): ``file`` and ``stamp`` together, or neither."""
        self.flush()
        self.enabled = enabled
        self._logger = structlog.get_logger("sluice.access")  # bound (and cached) under the new configuration
        self._file, self._stamp = (file, stamp) if file is not None and stamp is not None else (None, None)

    def write(self, fields: dict[str, Any]) -> None:
        """Write one access line with ``fields`` (``event``, ``level`` and ``timestamp`` are added to it)."""
        file, stamp = self._file, self._stamp
        if file is None or stamp is None:
            self._logger.info(EVENT, **fields)
            return
        fields["event"] = EVENT
        fields["level"] = "info"
        stamp(None, "info", fields)
        file.write(orjson.dumps(fields, default=str, option=orjson.OPT_APPEND_NEWLINE))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            file.flush()
            return
        if self._flush_loop is not loop:  # (a flush left on a loop that has since closed never runs)
            self._flush_loop = loop
            loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Write out the lines buffered since the last flush."""
        self._flush_loop = None
        if self._file is not None:
            self._file.flush()


ACCESS = AccessLog()  # through structlog until configure_logging says where lines go
