"""OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Groq, Together, OpenRouter...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import orjson

from sluice.canonical import ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, StreamEvent
from sluice.codecs.expressible import OPENAI, Capabilities
from sluice.codecs.framing import FramingError, SSEParser
from sluice.codecs.openai.chat_request import encode_chat_request
from sluice.codecs.openai.completion_request import encode_completion_request, encode_embedding_request
from sluice.codecs.openai.responses import (
    decode_chat_response,
    decode_completion_response,
    decode_embedding_response,
)
from sluice.codecs.openai.stream import ChatChunkDecoder
from sluice.errors import UpstreamError
from sluice.providers.base import HttpProvider, Target
from sluice.providers.http import UpstreamResponse

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HttpProvider):
    kind: ClassVar[str] = "openai"
    wire_format: ClassVar[str | None] = "openai"
    capabilities: ClassVar[Capabilities] = OPENAI

    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

    @property
    def serves_responses(self) -> bool:
        if self.config.responses_api is not None:
            return self.config.responses_api
        # OpenAI itself; other compatible servers (Gemini's endpoint included) often have chat only.
        return self.config.base_url is None and self.default_base_url == DEFAULT_BASE_URL

    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse:
        self.accept(req)
        if req.prompt is not None:
            body = encode_completion_request(req, target.model, stream=False)
            return decode_completion_response(
                await self.http.post_json(self.path("/completions", target.model), body, target.timeouts)
            )
        body = encode_chat_request(req, target.model, stream=False)
        path = self.path("/chat/completions", target.model)
        return decode_chat_response(await self.http.post_json(path, body, target.timeouts))

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        self.accept(req)
        if req.prompt is not None:
            path, body = "/completions", encode_completion_request(req, target.model, stream=True)
        else:
            path, body = "/chat/completions", encode_chat_request(req, target.model, stream=True)
        upstream = await self.http.request("POST", self.path(path, target.model), target.timeouts, orjson.dumps(body))
        try:
            async for event in decode_sse_stream(upstream):
                yield event
        finally:
            upstream.abort()

    async def embed(self, req: EmbedRequest, target: Target) -> EmbedResponse:
        body = encode_embedding_request(req, target.model)
        path = self.path("/embeddings", target.model)
        return decode_embedding_response(await self.http.post_json(path, body, target.timeouts))

    async def list_models(self) -> list[str]:
        body = await self.http.get_json(self.path("/models"), self.config.timeouts)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise UpstreamError("The upstream's model list has no 'data' array.")
        return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


async def decode_sse_stream(upstream: UpstreamResponse) -> AsyncIterator[StreamEvent]:
    """Decode an OpenAI SSE body into canonical events; a stream without ``[DONE]`` is an error."""
    parser = SSEParser()
    decoder = ChatChunkDecoder()
    try:
        async for chunk in upstream.iter_chunks():
            for sse in parser.feed(chunk):
                if sse.data == b"[DONE]":
                    return
                for event in decoder.decode(sse.data):
                    yield event
        tail = parser.flush()
        if tail is not None and tail.data == b"[DONE]":
            return
        if tail is not None:
            for event in decoder.decode(tail.data):
                yield event
    except FramingError as exc:
        raise UpstreamError(f"The upstream sent a malformed stream: {exc}.") from exc
    raise UpstreamError("The upstream stream ended without its [DONE] terminator.")
