"""One pooled aiohttp session per upstream, with Sluice's deadlines and error mapping.

Transport failures become :class:`UpstreamError` / :class:`UpstreamTimeout`; upstream HTTP errors become the
most specific :class:`SluiceError` (see :func:`error_from_status`). Bodies are read with a size bound so an
upstream that sends something endless cannot exhaust memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from sluice.config import Timeouts
from sluice.errors import RateLimited, SluiceError, UpstreamError, UpstreamRejected, UpstreamTimeout
from sluice.observability.tracing import UPSTREAM_TRACEPARENT

MAX_UPSTREAM_BODY = 64 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024
# Configured deadlines are few, so their aiohttp timeouts are kept; a request's own shorter ones (any values a
# caller chooses) are built per call rather than filling this cache.
MAX_CACHED_TIMEOUTS = 64


class UpstreamResponse:
    """An open upstream response: status and headers received, body not yet read."""

    __slots__ = ("_limit", "_resp", "_timeouts", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, timeouts: Timeouts, limit: int = MAX_UPSTREAM_BODY) -> None:
        self._resp = resp
        self._timeouts = timeouts
        self._limit = limit
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, within the size bound; releases the connection.

        A read that does not finish — cancelled because the client left, or failed — closes the connection, so the
        upstream sees the caller go at once and stops generating, and the pool gets its slot back (a connection
        left to the garbage collector held both of a 2-connection pool for minutes: issue 16.2).

        Gaps are bounded by the request's socket-read timer (the first-byte deadline, see ``request``): a
        non-streamed body follows its headers at once, so no second timer is paid for on every call. (``idle``
        is for streams: see :meth:`iter_chunks`.)
        """
        limit = self._limit if limit is None else limit
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in self._resp.content.iter_any():
                size += len(chunk)
                if size > limit:
                    self.abort()
                    raise UpstreamError(
                        f"The upstream response exceeded {limit} bytes and was cut off.", code="response_too_large"
                    )
                chunks.append(chunk)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            self.abort()
            raise UpstreamTimeout("The upstream stopped sending its response.") from None
        except aiohttp.ClientError as exc:
            self.abort()
            raise UpstreamError(f"The upstream connection failed while reading: {type(exc).__name__}.") from exc
        except BaseException:  # cancellation (the client left, a deadline): close, never hand the pool a live read
            self.abort()
            raise
        self._resp.release()
        return b"".join(chunks)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; a gap longer than the idle deadline, or more than the size bound in total,
        is an error (an endless stream is cut off, not relayed forever).

        The wait for the first chunk is still bounded by the first-byte deadline (the socket-read timer set in
        ``request``); once it arrives the same timer is switched to the idle deadline, so ``idle`` alone governs
        the gaps between chunks, at the cost of one timer reschedule per stream instead of a timeout per chunk.
        """
        content = self._resp.content
        total = 0
        while True:
            try:
                chunk = await content.readany()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                self.abort()
                if total == 0:
                    raise UpstreamTimeout(
                        f"The upstream sent no part of its answer within {self._timeouts.first_byte:g} s."
                    ) from None
                raise UpstreamTimeout(
                    f"The upstream sent nothing for {self._timeouts.idle:g} s and the stream was cut."
                ) from None
            except aiohttp.ClientError as exc:
                self.abort()
                raise UpstreamError(f"The upstream connection broke mid-stream: {type(exc).__name__}.") from exc
            except BaseException:  # cancelled while waiting for the next chunk: the upstream must see it at once
                self.abort()
                raise
            if not chunk:
                return
            if total == 0:
                self._read_timeout(self._timeouts.idle)
            total += len(chunk)
            if total > self._limit:
                self.abort()
                raise UpstreamError(
                    f"The upstream stream exceeded {self._limit} bytes and was cut off.", code="response_too_large"
                )
            yield chunk

    def _read_timeout(self, seconds: float) -> None:
        """Bound every later gap in the body by ``seconds``, starting now.

        aiohttp restarts its socket-read timer with the protocol's ``read_timeout`` on every packet; setting it
        changes the bound for the next gaps, and restarting the pending timer applies it to the current one.
        ``readany`` has just drained the buffer, so the timer measures the upstream's silence, not ours. When the
        connection is already gone (the whole body arrived) there is nothing left to bound.
        """
        connection = self._resp.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is None:
            return
        protocol.read_timeout = seconds
        protocol.start_timeout()

    def abort(self) -> None:
        """Drop the connection at once (the upstream sees the client go away)."""
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class HttpUpstream:
    """A keep-alive connection pool to one upstream base URL."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        max_connections: int,
        error_message: Callable[[Any], str | None] | None = None,
        max_response_bytes: int = MAX_UPSTREAM_BODY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_response_bytes = max_response_bytes
        self._headers = headers
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        self._error_message = error_message or generic_error_message

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300, keepalive_timeout=60)
        # Deadlines are applied per phase in request()/UpstreamResponse, not as one aiohttp total.
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("upstream pool used before start()")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        timeouts: Timeouts,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> UpstreamResponse:
        """Send a request and wait for the response headers within the first-byte deadline.

        The deadline is aiohttp's own socket-read timer (it restarts on every read, so while waiting for the
        headers it is exactly "time to first byte"); it is cheaper than a separate asyncio timeout per call.
        """
        url = self.base_url + path
        send_headers: dict[str, str] = {"Content-Type": "application/json"} if body is not None else {}
        if headers:
            send_headers.update(headers)
        traceparent = UPSTREAM_TRACEPARENT.get()
        if traceparent is not None:
            send_headers["traceparent"] = traceparent
        client_timeout = self._timeouts.get(timeouts)
        if client_timeout is None:
            client_timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
            )
            if len(self._timeouts) < MAX_CACHED_TIMEOUTS:
                self._timeouts[timeouts] = client_timeout
        try:
            resp = await self.session.request(method, url, data=body, headers=send_headers, timeout=client_timeout)
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamTimeout(
                f"Timed out connecting to the upstream after {timeouts.connect:g} s.", code="connect_timeout"
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"The upstream did not answer within {timeouts.first_byte:g} s.") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError("Could not connect to the upstream.", code="connect_error") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"The upstream connection failed: {type(exc).__name__}.") from exc
        upstream = UpstreamResponse(resp, timeouts, self.max_response_bytes)
        if check and resp.status >= 400:
            raise await self.error_for(upstream)
        return upstream

    async def error_for(self, upstream: UpstreamResponse) -> SluiceError:
        try:
            raw = await upstream.read(limit=MAX_ERROR_BODY)
        except SluiceError:
            raw = b""
        try:
            detail = self._error_message(orjson.loads(raw)) if raw else None
        except orjson.JSONDecodeError:
            detail = None
        return error_from_status(upstream.status, detail, upstream.headers.get("Retry-After"))

    async def get_json(self, path: str, timeouts: Timeouts) -> Any:
        upstream = await self.request("GET", path, timeouts)
        body = await upstream.read()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream answered with invalid JSON.") from None

    async def post_json(self, path: str, payload: Any, timeouts: Timeouts) -> Any:
        upstream = await self.request("POST", path, timeouts, orjson.dumps(payload))
        body = await upstream.read()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream answered with invalid JSON.") from None


def generic_error_message(body: Any) -> str | None:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``, ``{"error": "..."}``)."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None


def error_from_status(status: int, detail: str | None, retry_after: str | None) -> SluiceError:
    """Map an upstream HTTP error to what the caller should see.

    The upstream's own 401/403 mean the *gateway's* credentials are wrong, which the caller can do nothing
    about, so they become 502; the caller's own problems (400, 404, 413, 422) keep their status and message.
    """
    suffix = f": {detail}" if detail else "."
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return RateLimited(f"The upstream is rate limiting requests{suffix}", headers=headers, code="upstream_429")
    if status in (401, 403):
        return UpstreamError("The upstream refused the gateway's credentials.", code=f"upstream_{status}")
    if status in (400, 404, 409, 413, 422):
        return UpstreamRejected(f"The upstream rejected the request{suffix}", status=status)
    if status == 408 or status == 504:
        return UpstreamTimeout(f"The upstream timed out{suffix}", code=f"upstream_{status}")
    return UpstreamError(f"The upstream failed with HTTP {status}{suffix}", code=f"upstream_{status}")
