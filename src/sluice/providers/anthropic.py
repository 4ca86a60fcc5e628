"""Anthropic's Messages API as an upstream (and as the pass-through target for Anthropic clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from sluice.canonical import ChatRequest, ChatResponse, StreamEvent
from sluice.codecs.anthropic.request import encode_messages_request
from sluice.codecs.anthropic.response import decode_message_response
from sluice.codecs.anthropic.stream import MessageEventDecoder
from sluice.codecs.anthropic.structured import JSON_TOOL, json_tool_wanted
from sluice.codecs.expressible import ANTHROPIC, Capabilities
from sluice.codecs.framing import FramingError, SSEParser
from sluice.config import ProviderConfig
from sluice.errors import UpstreamError
from sluice.providers.base import HttpProvider, Target
from sluice.providers.http import UpstreamResponse

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
MAX_MODEL_PAGES = 20


class AnthropicProvider(HttpProvider):
    kind: ClassVar[str] = "anthropic"
    wire_format: ClassVar[str | None] = "anthropic"
    capabilities: ClassVar[Capabilities] = ANTHROPIC

    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        headers = {"anthropic-version": config.api_version or DEFAULT_VERSION}
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get_secret_value()
        return headers

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
            return str(message) if message else None
        return None

    def _body(self, req: ChatRequest, target: Target, stream: bool) -> dict[str, Any]:
        return encode_messages_request(req, target.model, stream, self.config.default_max_tokens)

    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse:
        self.accept(req)
        body = await self.http.post_json("/v1/messages", self._body(req, target, False), target.timeouts)
        return decode_message_response(body, JSON_TOOL if json_tool_wanted(req) else None)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        self.accept(req)
        payload = orjson.dumps(self._body(req, target, True))
        upstream = await self.http.request("POST", "/v1/messages", target.timeouts, payload)
        try:
            async for event in decode_event_stream(upstream, JSON_TOOL if json_tool_wanted(req) else None):
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


async def decode_event_stream(upstream: UpstreamResponse, json_tool: str | None = None) -> AsyncIterator[StreamEvent]:
    """Decode an Anthropic SSE body into canonical events; a stream without ``message_stop`` is an error."""
    parser = SSEParser()
    decoder = MessageEventDecoder(json_tool)
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
