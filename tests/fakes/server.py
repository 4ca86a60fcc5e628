"""What every fake shares: lifecycle, request recording, counters, the behaviour queue and fault dispatch.

Everything a test reads or scripts (records, counters, the queue) is guarded by one lock, because the server
thread writes it while the test thread reads it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web

from .background import BackgroundServer
from .delivery import Answer, ClientGone, Delivery, JsonAnswer, encode_json, play_json, play_stream
from .script import Fault, JsonObject, Reply

Render = Callable[[Reply], Answer]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HUGE_PIECE = 1024


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    json: JsonObject | None
    """The body parsed as a JSON object, or None when it was empty or not a JSON object."""
    received_at: float
    """time.monotonic() on arrival."""
    disconnected_at: float | None = None
    """time.monotonic() when the client went away before the answer was finished, else None."""

    @property
    def disconnected(self) -> bool:
        return self.disconnected_at is not None


_RECORD = web.RequestKey("fake_record", RecordedRequest)


@dataclass
class _Ledger:
    """Everything the server thread writes and the test thread reads (guarded by FakeUpstream._lock)."""

    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: list[RecordedRequest] = field(default_factory=list)
    queue: deque[Reply | Fault] = field(default_factory=deque)
    attempts: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class FakeUpstream(abc.ABC):
    """Base of FakeOpenAI, FakeAnthropic and FakeOllama: lifecycle, records and fault handling."""

    default_models: ClassVar[tuple[str, ...]] = ()
    generation_paths: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, *, reply: Reply | None = None, api_key: str | None = None, models: list[str] | None = None
    ) -> None:
        self.reply: Reply = reply if reply is not None else Reply()
        """The answer to every generation request once the queue is empty."""
        self.api_key: str | None = api_key
        """When set, requests must carry this key (each format checks it its own way)."""
        self.models: list[str] = list(models) if models is not None else list(self.default_models)
        self.keep_alive = True
        """False: every answer closes its connection, so `open_connections` counts only connections still busy."""
        self._lock = threading.Lock()
        self._ledger = _Ledger()
        self._connections: set[asyncio.BaseTransport] = set()  # every connection a request arrived on
        self._server = BackgroundServer(self._make_app, type(self).__name__)

    # ----- format hooks -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _routes(self) -> list[web.RouteDef]:
        """The format's endpoints."""

    @abc.abstractmethod
    def _error_body(self, status: int, message: str) -> JsonObject:
        """The format's error body for an HTTP error status."""

    def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """An error response when the request lacks the format's credentials or required headers."""
        return None

    def _response_headers(self) -> dict[str, str]:
        """Headers the vendor puts on every answer (request ids and the like)."""
        return {}

    def _is_generation(self, path: str) -> bool:
        """Whether a request to `path` counts as an attempt (and in flight)."""
        return path in self.generation_paths

    # ----- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on 127.0.0.1 at a free port; returns once the port is listening."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving: cancel whatever is still being answered and join the server thread."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server.port is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() or use it as a context manager")
        return self._server.port

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        return f"http://127.0.0.1:{self.port}"

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.add_routes(self._routes())
        app.on_response_prepare.append(self._on_prepare)
        return app

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        if not self.keep_alive:
            # The signal comes after aiohttp chose the headers: say "close" ourselves, so the client never reuses
            # a connection the server is about to close.
            response.headers["Connection"] = "close"
            response.force_close()

    # ----- what tests read and script -----------------------------------------------------------------------

    def enqueue(self, *behaviours: Reply | Fault) -> None:
        """Queue one-shot behaviours, consumed in FIFO order by generation requests before the default reply."""
        with self._lock:
            self._ledger.queue.extend(behaviours)

    def reset(self) -> None:
        """Forget every record and queued behaviour (the default reply, key and models stay)."""
        with self._lock:
            self._ledger = _Ledger()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._ledger.requests)

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """Requests whose client went away before their answer was finished."""
        with self._lock:
            return list(self._ledger.disconnects)

    @property
    def attempts(self) -> int:
        """Requests to generation endpoints (listing models and the like does not count)."""
        with self._lock:
            return self._ledger.attempts

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._ledger.in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._ledger.max_in_flight

    @property
    def open_connections(self) -> int:
        """TCP connections to this fake that are still open (idle keep-alive ones too, unless `keep_alive` is off)."""
        with self._lock:
            self._connections = {t for t in self._connections if not t.is_closing()}
            return len(self._connections)

    @property
    def pending(self) -> int:
        """Queued behaviours not yet consumed."""
        with self._lock:
            return len(self._ledger.queue)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
        """Poll `predicate` until it holds (True) or `timeout` seconds pass (False). Blocks the calling thread."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    async def wait_for_async(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the same signature as wait_for; this polls, it cancels nothing
        interval: float = 0.005,
    ) -> bool:
        """`wait_for` for async tests: yields to the caller's event loop while polling."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    # ----- serving ------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = await self._record(request)
        request[_RECORD] = record
        if request.transport is not None:
            with self._lock:
                self._connections.add(request.transport)
        counted = self._is_generation(request.path)
        if counted:
            with self._lock:
                ledger = self._ledger
                ledger.attempts += 1
                ledger.in_flight += 1
                ledger.max_in_flight = max(ledger.max_in_flight, ledger.in_flight)
        try:
            refusal = self._refuse(request)
            if refusal is not None:
                return refusal
            try:
                return await handler(request)
            except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
                return self.error_response(exc.status, f"Unknown request URL: {request.method} {request.path}")
        finally:
            if counted:
                with self._lock:
                    self._ledger.in_flight -= 1

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        parsed: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=raw,
            json=parsed if isinstance(parsed, dict) else None,
            received_at=time.monotonic(),
        )
        with self._lock:
            self._ledger.requests.append(record)
        return record

    def _note_disconnect(self, record: RecordedRequest) -> None:
        if self._server.stopping:  # our own shutdown cancelled it; the client did not leave
            return
        with self._lock:
            if record.disconnected_at is None:
                record.disconnected_at = time.monotonic()
                self._ledger.disconnects.append(record)

    def _next_behaviour(self) -> Reply | Fault:
        with self._lock:
            return self._ledger.queue.popleft() if self._ledger.queue else self.reply

    def error_response(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
        """An error answer in this format's shape."""
        all_headers = {**self._response_headers(), **(headers or {})}
        return web.Response(
            status=status,
            reason="Overloaded" if status == 529 else None,  # Anthropic's own status; HTTP has no phrase for it
            body=encode_json(self._error_body(status, message)),
            headers=all_headers,
            content_type="application/json",
        )

    def json_response(self, body: object) -> web.Response:
        """A successful non-generation answer (model lists and the like)."""
        return web.Response(body=encode_json(body), headers=self._response_headers(), content_type="application/json")

    def body_of(self, request: web.Request) -> JsonObject:
        """The request's JSON object body as recorded ({} when there was none)."""
        record = request[_RECORD]
        return record.json if record.json is not None else {}

    async def generate(self, request: web.Request, render: Render) -> web.StreamResponse:
        """Answer a generation request: take the next behaviour and play it through `render`."""
        record = request[_RECORD]
        if record.json is None:
            return self.error_response(400, "The request body is not a JSON object.")
        behaviour = self._next_behaviour()
        reply = behaviour if isinstance(behaviour, Reply) else self.reply
        fault = behaviour if isinstance(behaviour, Fault) else None
        delivery = Delivery(request, self._response_headers())
        try:
            await delivery.pause(reply.delay)
            return await self._play(delivery, render, reply, fault)
        except (ClientGone, ConnectionResetError):
            self._note_disconnect(record)
            return delivery.response if delivery.response is not None else web.Response(status=499)
        except asyncio.CancelledError:
            self._note_disconnect(record)
            raise

    async def _play(self, delivery: Delivery, render: Render, reply: Reply, fault: Fault | None) -> web.StreamResponse:
        if fault is not None and fault.kind == "status":
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return self.error_response(fault.status, fault.message_or(_status_message(fault.status)), headers)
        if fault is not None and fault.kind == "refuse":
            return delivery.abort()
        if fault is not None and fault.kind == "hang":
            await delivery.pause(fault.seconds)
            return delivery.abort()  # "never answers": when the hang ends, the connection just drops
        if fault is not None and fault.kind == "endless":
            reply = replace(reply, text="x", chunks=None, thinking=None, tool_calls=[])
        answer = render(reply)
        if fault is not None and fault.kind == "huge":
            answer = _inflate(render, reply, answer, fault.size)
        if isinstance(answer, JsonAnswer):
            error = self._error_body(500, fault.message_or(_status_message(500))) if fault is not None else {}
            return await play_json(delivery, answer, fault, encode_json(error))
        return await play_stream(delivery, answer, reply.chunk_delay, fault)


def _inflate(render: Render, reply: Reply, answer: Answer, size: int) -> Answer:
    """The same kind of answer, padded with text until it is `size` bytes (a stream: at least `size` bytes).

    Only answers that carry text grow: an embeddings answer stays as it is.
    """
    plain = replace(reply, chunks=None, thinking=None, tool_calls=[], chunk_delay=0.0)
    if not isinstance(answer, JsonAnswer):
        text = "x" * size
        return render(
            replace(plain, text=text, chunks=[text[i : i + _HUGE_PIECE] for i in range(0, size, _HUGE_PIECE)])
        )
    one = _encoded_size(render, replace(plain, text="x"))
    per_char = max(1, _encoded_size(render, replace(plain, text="xx")) - one)  # > 1 when n choices repeat it
    return render(replace(plain, text="x" * max(1, 1 + (size - one) // per_char)))


def _encoded_size(render: Render, reply: Reply) -> int:
    answer = render(reply)
    assert isinstance(answer, JsonAnswer)
    return len(answer.encode())


def _status_message(status: int) -> str:
    if status == 529:
        return "Overloaded"
    if status == 429:
        return "Rate limit reached. Please try again later."
    if status >= 500:
        return "The server had an error while processing your request."
    return "The request was rejected."
