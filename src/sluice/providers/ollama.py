"""Ollama's native API as an upstream (and as the pass-through target for Ollama clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from sluice.canonical import ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, StreamEvent
from sluice.codecs.expressible import OLLAMA, Capabilities
from sluice.codecs.framing import FramingError, NDJSONParser
from sluice.codecs.ollama.request import encode_chat_request, encode_embed_request, encode_generate_request
from sluice.codecs.ollama.response import decode_chat_response, decode_embed_response, decode_generate_response
from sluice.codecs.ollama.stream import NDJSONDecoder
from sluice.config import ProviderConfig
from sluice.errors import UpstreamError
from sluice.providers.base import HttpProvider, Target
from sluice.providers.http import UpstreamResponse

DEFAULT_BASE_URL = "http://127.0.0.1:11434"


class OllamaProvider(HttpProvider):
    kind: ClassVar[str] = "ollama"
    wire_format: ClassVar[str | None] = "ollama"
    capabilities: ClassVar[Capabilities] = OLLAMA

    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

    def upstream_headers(self, config: ProviderConfig) -> dict[str, str]:
        # Unlike the other kinds, a configured api_key wins over an Authorization set in ``headers``.
        return {**config.headers, **self.auth_headers(config)}

    def error_message(self, body: Any) -> str | None:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
        return None

    def _request(self, req: ChatRequest, target: Target, stream: bool) -> tuple[str, dict[str, Any]]:
        self.accept(req)
        if req.prompt is not None:
            return "/api/generate", encode_generate_request(req, target.model, stream)
        return "/api/chat", encode_chat_request(req, target.model, stream)

    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse:
        path, body = self._request(req, target, stream=False)
        answer = await self.http.post_json(path, body, target.timeouts)
        return decode_generate_response(answer) if path == "/api/generate" else decode_chat_response(answer)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        path, body = self._request(req, target, stream=True)
        upstream = await self.http.request("POST", path, target.timeouts, orjson.dumps(body))
        try:
            async for event in decode_line_stream(upstream):
                yield event
        finally:
            upstream.abort()

    async def embed(self, req: EmbedRequest, target: Target) -> EmbedResponse:
        body = encode_embed_request(req, target.model)
        return decode_embed_response(await self.http.post_json("/api/embed", body, target.timeouts), target.model)

    async def list_models(self) -> list[str]:
        tags = await self.http.get_json("/api/tags", self.config.timeouts)
        models = tags.get("models") if isinstance(tags, dict) else None
        if not isinstance(models, list):
            raise UpstreamError("The upstream's model list has no 'models' array.")
        return [str(m.get("name") or m.get("model")) for m in models if isinstance(m, dict)]

    async def health(self) -> None:
        await self.http.get_json("/api/version", self.config.timeouts)

    async def get_json(self, path: str) -> Any:
        """A read-only Ollama endpoint (``/api/ps``, ``/api/version``) for the Ollama surface."""
        return await self.http.get_json(path, self.config.timeouts)

    async def post_json(self, path: str, payload: Any) -> Any:
        """``/api/show`` for the Ollama surface."""
        return await self.http.post_json(path, payload, self.config.timeouts)


async def decode_line_stream(upstream: UpstreamResponse) -> AsyncIterator[StreamEvent]:
    """Decode an Ollama NDJSON body into canonical events; a stream without its ``done`` line is an error."""
    parser = NDJSONParser()
    decoder = NDJSONDecoder()
    try:
        async for chunk in upstream.iter_chunks():
            for line in parser.feed(chunk):
                for event in decoder.decode(line):
                    yield event
        tail = parser.flush()
        if tail is not None:
            for event in decoder.decode(tail):
                yield event
    except FramingError as exc:
        raise UpstreamError(f"The upstream sent a malformed stream: {exc}.") from exc
    if not decoder.complete:
        raise UpstreamError("The upstream stream ended without its final 'done' line.", code="truncated_stream")
