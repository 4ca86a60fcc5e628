"""Anthropic's Messages API as an upstream (and as the pass-through target for Anthropic clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from sluice.canonical import ChatRequest, ChatResponse, StreamEvent
from sluice.codecs.anthropic.request import encode_messages_request
from sluice.codecs.anthropic.response import decode_message_response
from sluice.codecs.anthropic.stream import MessageEventDecoder
from sluice.codecs.expressible import ANTHROPIC, Capabilities
from sluice.codecs.framing import FramingError, SSEParser
from sluice.config import ProviderConfig
from sluice.errors import UpstreamError
from sluice.providers.base import Provider, Target
from sluice.providers.http import HttpUpstream, UpstreamResponse

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
MAX_MODEL_PAGES = 20


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        return str(message) if message else None
    return None


class AnthropicProvider(Provider):
    kind: ClassVar[str] = "anthropic"
    wire_format: ClassVar[str | None] = "anthropic"
    capabilities: ClassVar[Capabilities] = ANTHROPIC

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = {"anthropic-version": config.api_version or DEFAULT_VERSION}
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get_secret_value()
        headers.update(config.headers)
        self.http = HttpUpstream(
            config.base_url or DEFAULT_BASE_URL,
            headers,
            config.max_connections,
            _error_message,
            config.max_response_bytes,
        )

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    def _body(self, req: ChatRequest, target: Target, stream: bool) -> dict[str, Any]:
        return encode_messages_request(req, target.model, stream, self.config.default_max_tokens)

    async def forward(
        self, path: str, body: bytes, target: Target, stream: bool, headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        return await self.http.request("POST", path, target.timeouts, body, headers)

    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse:
        self.accept(req)
        body = await self.http.post_json("/v1/messages", self._body(req, target, False), target.timeouts)
        return decode_message_response(body)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        self.accept(req)
        payload = orjson.dumps(self._body(req, target, True))
        upstream = await self.http.request("POST", "/v1/messages", target.timeouts, payload)
        try:
            async for event in decode_event_stream(upstream):
                yield event
        finally:
            upstream.abort()

    async def list_models(self) -> list[str]:
        names: list[str] = []
        after: str | None = None
        for _ in range(MAX_MODEL_PAGES):
            query = "?limit=100" + (f"&after_id={after}" if after else "")
            page = await self.http.get_json("/v1/models" + query, self.config.timeouts)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise UpstreamError("The upstream's model list has no 'data' array.")
            names += [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
            if not page.get("has_more") or not page.get("last_id"):
                break
            after = str(page["last_id"])
        return names


async def decode_event_stream(upstream: UpstreamResponse) -> AsyncIterator[StreamEvent]:
    """Decode an Anthropic SSE body into canonical events; a stream without ``message_stop`` is an error."""
    parser = SSEParser()
    decoder = MessageEventDecoder()
    try:
        async for chunk in upstream.iter_chunks():
            for sse in parser.feed(chunk):
                for event in decoder.decode(sse.event, sse.data):
                    yield event
                if decoder.complete:
                    return
        tail = parser.flush()
        if tail is not None:
            for event in decoder.decode(tail.event, tail.data):
                yield event
    except FramingError as exc:
        raise UpstreamError(f"The upstream sent a malformed stream: {exc}.") from exc
    if not decoder.complete:
        raise UpstreamError("The upstream stream ended without message_stop.", code="truncated_stream")
