"""OpenAI, Azure OpenAI and Gemini providers: the URLs and credentials each one sends (a real local server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from sluice.canonical import ChatRequest, EmbedRequest, Message, TextPart
from sluice.config import ProviderConfig, Timeouts
from sluice.errors import RateLimited, UpstreamError, UpstreamRejected
from sluice.providers.azure import AzureOpenAIProvider
from sluice.providers.base import Target
from sluice.providers.gemini import GEMINI_OPENAI_BASE_URL, GeminiProvider
from sluice.providers.openai import OpenAIProvider

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], Any]] = []
        self.status = 200


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        recorder.seen.append((request.method, request.path_qs, dict(request.headers), body))
        if recorder.status != 200:
            return web.json_response(
                {"error": {"message": "nope"}}, status=recorder.status, headers={"Retry-After": "3"}
            )
        if request.path.endswith("/models"):
            return web.json_response({"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
        if request.path.endswith("/embeddings"):
            return web.json_response(
                {
                    "object": "list",
                    "data": [{"index": 0, "embedding": [0.5]}],
                    "model": "e",
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                }
            )
        return web.json_response(CHAT)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", recorder
    await runner.cleanup()


def request() -> ChatRequest:
    return ChatRequest(model="public", messages=[Message("user", [TextPart("hi")])])


TARGET = Target("dep-1", Timeouts())


async def test_openai_sends_bearer_and_upstream_model(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    provider = OpenAIProvider(ProviderConfig(name="o", kind="openai", base_url=url + "/v1", api_key="sk-up"))
    await provider.start()
    try:
        resp = await provider.chat(request(), TARGET)
    finally:
        await provider.close()
    method, path, headers, body = rec.seen[0]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["Authorization"] == "Bearer sk-up"
    assert body["model"] == "dep-1"
    assert resp.usage is not None and resp.usage.prompt_tokens == 3


async def test_azure_classic_routes_use_deployment_and_api_version(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    config = ProviderConfig(name="az", kind="azure", base_url=url, api_key="az-key", api_version="2024-10-21")
    provider = AzureOpenAIProvider(config)
    await provider.start()
    try:
        await provider.chat(request(), TARGET)
        await provider.embed(EmbedRequest(model="public", inputs=["x"]), TARGET)
        assert await provider.list_models() == ["a", "b"]
    finally:
        await provider.close()
    paths = [p for _, p, _, _ in rec.seen]
    assert paths == [
        "/openai/deployments/dep-1/chat/completions?api-version=2024-10-21",
        "/openai/deployments/dep-1/embeddings?api-version=2024-10-21",
        "/openai/models?api-version=2024-10-21",
    ]
    headers = rec.seen[0][2]
    assert headers["api-key"] == "az-key" and "Authorization" not in headers


async def test_azure_v1_routes_without_api_version(upstream: tuple[str, Recorder]) -> None:
    url, rec = upstream
    provider = AzureOpenAIProvider(ProviderConfig(name="az", kind="azure", base_url=url, api_key="k"))
    await provider.start()
    try:
        await provider.chat(request(), TARGET)
    finally:
        await provider.close()
    assert rec.seen[0][1] == "/openai/v1/chat/completions"
    assert rec.seen[0][3]["model"] == "dep-1"


def test_gemini_defaults_to_googles_openai_endpoint() -> None:
    provider = GeminiProvider(ProviderConfig(name="g", kind="gemini", api_key="g-key"))
    assert provider.http.base_url == GEMINI_OPENAI_BASE_URL


@pytest.mark.parametrize(
    ("status", "error"), [(400, UpstreamRejected), (401, UpstreamError), (429, RateLimited), (500, UpstreamError)]
)
async def test_upstream_errors_map_to_what_the_caller_should_see(
    upstream: tuple[str, Recorder], status: int, error: type[Exception]
) -> None:
    url, rec = upstream
    rec.status = status
    provider = OpenAIProvider(ProviderConfig(name="o", kind="openai", base_url=url, api_key="sk-up"))
    await provider.start()
    try:
        with pytest.raises(error) as caught:
            await provider.chat(request(), TARGET)
    finally:
        await provider.close()
    if status == 401:
        assert caught.value.status == 502  # type: ignore[attr-defined]
    if status == 429:
        assert caught.value.headers == {"Retry-After": "3"}  # type: ignore[attr-defined]


async def test_connection_refused_is_a_502() -> None:
    provider = OpenAIProvider(ProviderConfig(name="o", kind="openai", base_url="http://127.0.0.1:9"))
    await provider.start()
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(request(), TARGET)
    finally:
        await provider.close()
    assert caught.value.status == 502 and caught.value.code == "connect_error"
