"""The UI's way into the gateway: its own public HTTP API, with the signed-in user's token.

Every action the UI takes goes through the admin REST API and the OpenAI-compatible API exactly as any client's
would, so the UI can never see or do more than the user's role allows, and no business rule lives twice. Calls
use loopback HTTP to this same process (in-process ASGI transports buffer whole responses, which would defeat
streaming and the Stop button). The user's tokens live server-side in the UI session, never in the page. Each
call names the browser it is made for in a signed header (:func:`sluice.web.session.browser_headers`), so the
login throttle and IP rules judge the browser's address rather than the UI's loopback one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

ADMIN = "/admin/v1"
TIMEOUT = httpx.Timeout(30.0, read=600.0)


class ApiError(Exception):
    """An API call failed; ``message`` is the gateway's own explanation, fit to show."""

    def __init__(self, status: int, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.field = field


def error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, f"The gateway answered {response.status_code}.")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return ApiError(response.status_code, str(error.get("message")), error.get("code"), error.get("param"))
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and body["detail"]:
        first = body["detail"][0]
        where = ".".join(str(p) for p in first.get("loc", [])[1:]) or "request"
        return ApiError(response.status_code, f"{where}: {first.get('msg')}", "invalid", where)
    return ApiError(response.status_code, f"The gateway answered {response.status_code}.")


@dataclass
class Tokens:
    access: str
    refresh: str


@dataclass
class StreamEvent:
    """One piece of a streamed answer: text, the final usage, or queue information from the headers."""

    text: str = ""
    usage: dict[str, Any] | None = None
    queue_position: int | None = None
    queue_wait_ms: float | None = None


class GatewayClient:
    """A signed-in user's handle on the gateway (``tokens`` may be replaced by a refresh)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: Tokens | None,
        on_tokens: Callable[[Tokens | None], None],
        browser: dict[str, str] | None = None,
    ):
        self.http = http
        self.tokens = tokens
        self._on_tokens = on_tokens
        # The signed header naming the browser this client acts for (see session.browser_headers), on every call.
        self._browser = browser or {}

    def _headers(self) -> dict[str, str]:
        if self.tokens is None:
            return dict(self._browser)
        return {**self._browser, "authorization": f"Bearer {self.tokens.access}"}

    async def _refresh(self) -> bool:
        if self.tokens is None:
            return False
        response = await self.http.post(
            f"{ADMIN}/auth/refresh", json={"refresh_token": self.tokens.refresh}, headers=self._browser
        )
        if response.status_code != 200:
            self.tokens = None
            self._on_tokens(None)
            return False
        body = response.json()
        self.tokens = Tokens(body["access_token"], body["refresh_token"])
        self._on_tokens(self.tokens)
        return True

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API; a stale access token is refreshed once, transparently."""
        response = await self.http.request(method, path, headers=self._headers(), **kwargs)
        if response.status_code == 401 and await self._refresh():
            response = await self.http.request(method, path, headers=self._headers(), **kwargs)
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_of(response)
        return response.json() if response.content else {}

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.json(method, ADMIN + path, **kwargs)

    async def stream_chat(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncIterator[StreamEvent]:
        """``/v1/chat/completions`` streamed; closing the iterator closes the connection (the gateway then
        cancels the upstream request and frees the slot). ``headers`` go along (the chat page's request id)."""
        for attempt in range(2):
            async with self.http.stream(
                "POST",
                "/v1/chat/completions",
                json={**body, "stream": True},
                headers={**(headers or {}), **self._headers()},
            ) as response:
                if response.status_code == 401 and attempt == 0 and await self._refresh():
                    continue
                if response.status_code >= 400:
                    await response.aread()
                    raise error_of(response)
                position = response.headers.get("x-sluice-queue-position")
                wait = response.headers.get("x-sluice-queue-wait-ms")
                if position is not None:
                    yield StreamEvent(queue_position=int(position), queue_wait_ms=float(wait or 0))
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = orjson.loads(line[6:])
                    if "error" in chunk:
                        raise ApiError(502, str(chunk["error"].get("message", "The answer failed.")))
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield StreamEvent(text=text)
                    if chunk.get("usage"):
                        yield StreamEvent(usage=chunk["usage"])
                return
