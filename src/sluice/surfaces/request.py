"""The per-request wrapper every proxied route runs in, and the JSON body reading they share.

The wrapper guarantees the invariants of the brief for every route: errors leave in the caller's own API shape,
an unexpected exception becomes a 500 in that shape without internals, a vanished client is not an error, and
the call is settled exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import structlog

from sluice.call import Call
from sluice.errors import CutAtShutdown, InvalidRequest, SluiceError, UpstreamTimeout
from sluice.pipeline import Gateway
from sluice.server.exchange import ClientGone, Exchange

log = structlog.get_logger("sluice.surface")


class Format(Protocol):
    """How one client-facing API renders errors."""

    name: str

    def error_response(self, error: SluiceError) -> tuple[int, bytes]: ...

    def stream_error(self, error: SluiceError) -> bytes: ...


Handler = Callable[[Gateway, Exchange, Call], Awaitable[None]]


async def run(gw: Gateway, ex: Exchange, fmt: Format, endpoint: str, handler: Handler) -> None:
    call = Call(ex.request_id, fmt.name, endpoint, ex.started)
    call.alive = ex.connected
    if gw.timing_headers:
        ex.header_hook = lambda: gw.response_headers(call)
    try:
        try:
            # The deadline starts unset; Gateway.open moves it to each tried deployment's total timeout.
            async with asyncio.timeout(None) as deadline:
                call.deadline = deadline
                await handler(gw, ex, call)
        except TimeoutError:
            raise UpstreamTimeout("The request exceeded its total deadline.", code="total_timeout") from None
    except SluiceError as err:
        call.fail(err)
        await gw.settle_before_error(call)
        await _send_error(ex, fmt, err)
    except ClientGone:
        call.cancelled = True
    except asyncio.CancelledError:
        if not ex.client_gone:
            # Shutdown, not the client: recorded as cut (never as the 200 its headers may have said), then let it
            # propagate.
            call.fail(CutAtShutdown("The gateway shut down before the answer was complete.", code="shutdown"))
            raise
        call.cancelled = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except Exception:
        log.exception("unhandled error", request_id=ex.request_id, surface=fmt.name, endpoint=endpoint)
        internal = SluiceError("The gateway failed to handle this request.", code="internal_error")
        call.fail(internal)
        await gw.settle_before_error(call)
        await _send_error(ex, fmt, internal)
    finally:
        ex.stop_watching()
        await gw.release_and_report(call)


async def _send_error(ex: Exchange, fmt: Format, err: SluiceError) -> None:
    if ex.client_gone or ex.responded:
        return
    if ex.status:
        # The stream had started: end it with the format's error event, never as if it had completed.
        await ex.write(fmt.stream_error(err))
        await ex.end_stream()
        return
    status, body = fmt.error_response(err)
    headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await ex.respond(status, body, headers=headers)


async def read_json(gw: Gateway, ex: Exchange) -> tuple[dict[str, Any], bytes]:
    """Read and parse the JSON object body (returned with its raw bytes), then watch for the client leaving."""
    body = await ex.body(gw.max_body)
    ex.watch_disconnect()
    if not body.strip():
        raise InvalidRequest("The request body is empty; expected a JSON object.", code="invalid_body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc.msg}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    if gw.log_prompts:
        # Explicit opt-in only (observability.log_prompts): request bodies hold prompts, never keys.
        log.debug("request body", request_id=ex.request_id, body=data)
    return data, body
