"""The fake upstreams speak each vendor's wire format: proven with the official SDKs, and fault by fault.

Every test talks to a fake directly (no gateway in between), so a failure here means the fake is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, Fault, Reply, ToolCallSpec, embedding_vector

USER: list[dict[str, str]] = [{"role": "user", "content": "Hi"}]  # Ollama and raw HTTP
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
TURN: list[MessageParam] = [{"role": "user", "content": "Hi"}]
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
WEATHER = ToolCallSpec(id="call_weather_1", name="get_weather", arguments={"city": "Paris", "unit": "celsius"})


# ----- fixtures and helpers -------------------------------------------------------------------------------------


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def oai(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0, timeout=5.0) as client:
        yield client


@pytest.fixture
def claude(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake_anthropic.url, api_key="sk-ant-test", max_retries=0, timeout=5.0) as client:
        yield client


@pytest.fixture
def llama(fake_ollama: FakeOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake_ollama.url, timeout=5.0) as client:
        yield client


def raw_post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """POST without any SDK, to look at the exact bytes."""
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return client.post(url, json=body, headers=headers)


def raw_get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        return client.get(url, headers=headers)


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def sse_events(text: str) -> list[str]:
    return [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]


def openai_chat_raw(fake: FakeOpenAI, **body: Any) -> httpx.Response:
    return raw_post(fake.base_url + "/chat/completions", {"model": "gpt-fake", "messages": USER, **body})


# ----- OpenAI -------------------------------------------------------------------------------------------------


def test_openai_chat_completion_carries_text_usage_and_the_requested_model(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    fake_openai.reply = Reply(text="Hello there", prompt_tokens=12, completion_tokens=5)

    completion = oai.chat.completions.create(model="gpt-fake-mini", messages=CHAT)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-fake-mini"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12,
        5,
        17,
    )
    assert completion.usage.prompt_tokens_details is None


def test_openai_records_each_request_with_lower_case_headers_and_json_body(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    oai.chat.completions.create(model="gpt-fake", messages=CHAT, temperature=0.2)
    oai.models.list()

    first, second = fake_openai.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.json is not None and first.json["temperature"] == 0.2
    assert json.loads(first.body) == first.json
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert fake_openai.attempts == 1  # listing models is not a generation attempt


def test_openai_stream_with_include_usage_ends_with_a_usage_only_chunk(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    fake_openai.reply = Reply(text="Streaming works", prompt_tokens=7, completion_tokens=3)

    with oai.chat.completions.create(
        model="gpt-fake",
        messages=CHAT,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming works"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *earlier, last = chunks
    assert all(c.usage is None for c in earlier)
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (7, 3, 10)

    data = sse_data(openai_chat_raw(fake_openai, stream=True, stream_options={"include_usage": True}).text)
    assert data[-1] == "[DONE]"
    assert all(json.loads(frame)["usage"] is None for frame in data[:-2])  # usage: null until the last chunk


def test_openai_stream_without_include_usage_sends_no_usage_at_all(fake_openai: FakeOpenAI) -> None:
    response = openai_chat_raw(fake_openai, stream=True)

    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    assert all("usage" not in json.loads(frame) for frame in data[:-1])


def test_openai_tool_call_deltas_accumulate_to_the_scripted_call(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.reply = Reply(text="", tool_calls=[WEATHER])

    with oai.chat.completions.create(model="gpt-fake", messages=CHAT, stream=True) as stream:
        chunks = list(stream)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            entry["name"] += (delta.function and delta.function.name) or ""
            entry["arguments"] += (delta.function and delta.function.arguments) or ""

    assert calls == {0: {"id": "call_weather_1", "name": "get_weather", "arguments": WEATHER.arguments_json()}}
    assert sum(1 for c in chunks if c.choices[0].delta.tool_calls) > 2  # the arguments really arrive in fragments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    completion = oai.chat.completions.create(model="gpt-fake", messages=CHAT)
    message = completion.choices[0].message
    assert message.content is None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function" and call.id == "call_weather_1"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", WEATHER.arguments)


def test_openai_stream_helper_builds_the_final_completion(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.reply = Reply(text="Let me check.", tool_calls=[WEATHER])

    with oai.chat.completions.stream(model="gpt-fake", messages=CHAT) as stream:
        final = stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "get_weather"


def test_openai_honours_n_choices(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-fake", messages=CHAT, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]

    with oai.chat.completions.create(model="gpt-fake", messages=CHAT, n=2, stream=True) as stream:
        texts = {0: "", 1: ""}
        for chunk in stream:
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
    assert texts == {0: Reply().text, 1: Reply().text}


def test_openai_reports_reasoning_and_cached_tokens(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.reply = Reply(thinking="Think first.", prompt_tokens=100, cached_tokens=64)

    completion = oai.chat.completions.create(model="gpt-fake", messages=CHAT)

    assert completion.choices[0].message.model_extra == {"reasoning_content": "Think first."}
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 64
    streamed = [json.loads(d) for d in sse_data(openai_chat_raw(fake_openai, stream=True).text)[:-1]]
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in streamed if c["choices"])
    assert reasoning == "Think first."


def test_openai_legacy_completions_stream_and_not(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.reply = Reply(text="Once upon a time", finish="length")

    completion = oai.completions.create(model="gpt-fake", prompt="Tell me")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Once upon a time"
    assert completion.choices[0].finish_reason == "length"

    with oai.completions.create(
        model="gpt-fake", prompt="Tell me", stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Once upon a time"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_openai_embeddings_as_floats_and_base64_decode_to_the_same_vectors(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    fake_openai.reply = Reply(embedding_dim=8)

    floats = oai.embeddings.create(model="text-embed-fake", input=["alpha", "beta"], encoding_format="float")
    default = oai.embeddings.create(model="text-embed-fake", input=["alpha", "beta"])  # the SDK asks for base64
    encoded = oai.embeddings.create(model="text-embed-fake", input="alpha", encoding_format="base64")

    assert [e.embedding for e in floats.data] == [embedding_vector("alpha", 8), embedding_vector("beta", 8)]
    assert [e.embedding for e in default.data] == [e.embedding for e in floats.data]
    assert fake_openai.requests[1].json is not None and fake_openai.requests[1].json["encoding_format"] == "base64"
    raw = base64.b64decode(encoded.data[0].embedding)  # type: ignore[arg-type]  # typed list[float]; a str here
    assert list(struct.unpack("<8f", raw)) == embedding_vector("alpha", 8)
    assert all(-1.0 <= value <= 1.0 for value in floats.data[0].embedding)
    assert floats.usage.prompt_tokens == 10 and floats.model == "text-embed-fake"
    assert fake_openai.attempts == 3


def test_openai_lists_and_retrieves_models(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["gpt-fake", "gpt-fake-mini"]
    fake_openai.models = ["gpt-other"]
    model = oai.models.retrieve("gpt-other")
    assert (model.id, model.object) == ("gpt-other", "model")
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("gpt-missing")
    assert caught.value.code == "model_not_found"


def test_openai_api_key_is_enforced_in_openai_shape(fake_openai: FakeOpenAI) -> None:
    fake_openai.api_key = "sk-right"
    with (
        openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.chat.completions.create(model="gpt-fake", messages=CHAT)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    with openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-right", max_retries=0) as client:
        assert client.chat.completions.create(model="gpt-fake", messages=CHAT).choices


def test_unknown_paths_answer_404_in_each_format_shape(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_ollama: FakeOllama
) -> None:
    openai_404 = raw_get(fake_openai.url + "/v1/nope")
    anthropic_404 = raw_get(fake_anthropic.url + "/v1/nope", ANTHROPIC_HEADERS)
    ollama_404 = raw_get(fake_ollama.url + "/api/nope")

    assert openai_404.status_code == anthropic_404.status_code == ollama_404.status_code == 404
    assert set(openai_404.json()["error"]) == {"message", "type", "param", "code"}
    assert anthropic_404.json()["type"] == "error"
    assert anthropic_404.json()["error"]["type"] == "not_found_error"
    assert isinstance(ollama_404.json()["error"], str)


def test_reply_without_usage_omits_it_everywhere(fake_openai: FakeOpenAI, fake_ollama: FakeOllama) -> None:
    fake_openai.reply = fake_ollama.reply = Reply(usage=False)

    assert "usage" not in openai_chat_raw(fake_openai).json()
    streamed = openai_chat_raw(fake_openai, stream=True, stream_options={"include_usage": True}).text
    assert "usage" not in streamed
    final = raw_post(fake_ollama.url + "/api/chat", {"model": "m", "messages": USER, "stream": False}).json()
    assert final["done"] is True and "eval_count" not in final and "prompt_eval_count" not in final


# ----- Anthropic ----------------------------------------------------------------------------------------------


def test_anthropic_message_carries_text_stop_reason_and_cache_usage(
    fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic
) -> None:
    fake_anthropic.reply = Reply(text="Bonjour", prompt_tokens=100, cached_tokens=40, completion_tokens=9)

    message = claude.messages.create(model="claude-fake", max_tokens=64, messages=TURN)

    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-fake"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Bonjour")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (60, 40, 0)
    assert usage.output_tokens == 9
    headers = fake_anthropic.requests[0].headers
    assert "sk-ant-test" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in headers


def test_anthropic_maps_finish_to_its_stop_reasons(fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    fake_anthropic.enqueue(Reply(finish="length"), Reply(stop_sequence="END"), Reply(tool_calls=[WEATHER]))
    stops = [
        (m.stop_reason, m.stop_sequence)
        for m in (claude.messages.create(model="c", max_tokens=8, messages=TURN) for _ in range(3))
    ]
    assert stops == [("max_tokens", None), ("stop_sequence", "END"), ("tool_use", None)]


def test_anthropic_stream_sends_the_exact_event_sequence(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply = Reply(text="abcdefgh", completion_tokens=4)

    response = raw_post(
        fake_anthropic.url + "/v1/messages",
        {"model": "claude-fake", "max_tokens": 10, "messages": USER, "stream": True},
        ANTHROPIC_HEADERS,
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    assert sse_events(response.text) == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for d in sse_data(response.text)]
    assert data[0]["message"]["content"] == [] and data[0]["message"]["usage"]["output_tokens"] == 1
    assert data[0]["message"]["stop_reason"] is None
    assert data[-2]["delta"]["stop_reason"] == "end_turn" and data[-2]["usage"] == {"output_tokens": 4}


def test_anthropic_stream_builds_thinking_text_and_tool_use(
    fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic
) -> None:
    fake_anthropic.reply = Reply(text="Checking the weather.", thinking="The user wants weather.", tool_calls=[WEATHER])

    with claude.messages.stream(model="claude-fake", max_tokens=64, messages=TURN) as stream:
        final = stream.get_final_message()

    thinking, text, tool = final.content
    assert thinking.type == "thinking" and thinking.thinking == "The user wants weather." and thinking.signature
    assert text.type == "text" and text.text == "Checking the weather."
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("call_weather_1", "get_weather", WEATHER.arguments)
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 6

    non_stream = claude.messages.create(model="claude-fake", max_tokens=64, messages=TURN)
    assert [block.type for block in non_stream.content] == ["thinking", "text", "tool_use"]


def test_anthropic_counts_tokens_and_lists_models(fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic) -> None:
    fake_anthropic.reply = Reply(prompt_tokens=321)

    assert claude.messages.count_tokens(model="claude-fake", messages=TURN).input_tokens == 321
    models = claude.models.list()
    assert [m.id for m in models.data] == ["claude-fake", "claude-fake-haiku"]
    assert models.data[0].type == "model" and models.data[0].display_name
    assert (models.first_id, models.last_id, models.has_more) == ("claude-fake", "claude-fake-haiku", False)
    assert claude.models.retrieve("claude-fake-haiku").id == "claude-fake-haiku"
    assert fake_anthropic.attempts == 0


def test_anthropic_requires_its_key_and_version_header(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.api_key = "sk-ant-right"
    with (
        anthropic.Anthropic(base_url=fake_anthropic.url, api_key="sk-ant-wrong", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.messages.create(model="c", max_tokens=8, messages=TURN)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": caught.value.body["request_id"],  # type: ignore[index]
    }

    no_version = raw_post(
        fake_anthropic.url + "/v1/messages",
        {"model": "c", "max_tokens": 8, "messages": USER},
        {"x-api-key": "sk-ant-right"},
    )
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"


async def test_async_anthropic_client_streams_too(fake_anthropic: FakeAnthropic) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key="k", max_retries=0) as client,
        client.messages.stream(model="c", max_tokens=8, messages=TURN) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
    assert text == Reply().text


# ----- Ollama -------------------------------------------------------------------------------------------------


def test_ollama_chat_streams_ndjson_by_default(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    response = raw_post(fake_ollama.url + "/api/chat", {"model": "llama-fake:latest", "messages": USER})

    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(line["done"] is False and line["message"]["role"] == "assistant" for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert (final["prompt_eval_count"], final["eval_count"]) == (10, 6)
    durations = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
    assert all(isinstance(final[name], int) and final[name] > 0 for name in durations)

    parts = list(llama.chat(model="llama-fake:latest", messages=USER, stream=True))
    assert "".join(p.message.content or "" for p in parts) == Reply().text
    assert parts[-1].done and parts[-1].eval_count == 6


def test_ollama_chat_non_stream_with_tool_calls_and_thinking(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    fake_ollama.reply = Reply(text="", thinking="Weather, then.", tool_calls=[WEATHER])

    answer = llama.chat(model="qwen-fake:7b", messages=USER, think=True)
    assert answer.done and answer.model == "qwen-fake:7b"
    assert answer.message.thinking == "Weather, then."
    assert answer.message.tool_calls is not None
    call = answer.message.tool_calls[0].function
    assert (call.name, dict(call.arguments)) == ("get_weather", WEATHER.arguments)

    streamed = list(llama.chat(model="qwen-fake:7b", messages=USER, stream=True))
    calls = [c for p in streamed for c in (p.message.tool_calls or [])]
    assert [dict(c.function.arguments) for c in calls] == [WEATHER.arguments]
    assert "".join(p.message.thinking or "" for p in streamed) == "Weather, then."


def test_ollama_generate_stream_and_not(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    fake_ollama.reply = Reply(text="Generated.", finish="length")

    answer = llama.generate(model="llama-fake:latest", prompt="Go")
    assert answer.response == "Generated." and answer.done_reason == "length"
    parts = list(llama.generate(model="llama-fake:latest", prompt="Go", stream=True))
    assert "".join(p.response or "" for p in parts) == "Generated."
    assert parts[-1].done and not any(p.done for p in parts[:-1])


def test_ollama_embeddings_match_the_other_formats(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    embedded = llama.embed(model="llama-fake:latest", input=["alpha", "beta"])
    assert [list(v) for v in embedded.embeddings] == [embedding_vector("alpha", 4), embedding_vector("beta", 4)]
    assert embedded.prompt_eval_count == 10

    legacy = llama.embeddings(model="llama-fake:latest", prompt="alpha")
    assert list(legacy.embedding) == embedding_vector("alpha", 4)
    assert fake_ollama.attempts == 2


def test_ollama_lists_shows_and_reports_version(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    assert [m.model for m in llama.list().models] == ["llama-fake:latest", "qwen-fake:7b"]
    shown = llama.show("qwen-fake:7b")
    assert shown.details is not None and shown.details.family == "qwen" and shown.details.parameter_size == "7B"
    assert shown.modelinfo is not None and shown.capabilities and shown.modelfile and shown.template
    assert [m.model for m in llama.ps().models] == ["llama-fake:latest", "qwen-fake:7b"]
    assert raw_get(fake_ollama.url + "/api/version").json() == {"version": "0.12.0"}
    with pytest.raises(ollama.ResponseError) as caught:
        llama.show("missing:latest")
    assert caught.value.status_code == 404
    assert fake_ollama.attempts == 0


def test_ollama_records_options_keep_alive_format_and_think(fake_ollama: FakeOllama, llama: ollama.Client) -> None:
    llama.chat(
        model="llama-fake:latest",
        messages=USER,
        options={"temperature": 0.1},
        keep_alive="5m",
        format="json",
        think=True,
    )

    body = fake_ollama.requests[0].json
    assert body is not None
    assert (body["options"], body["keep_alive"], body["format"], body["think"]) == (
        {"temperature": 0.1},
        "5m",
        "json",
        True,
    )


# ----- faults -------------------------------------------------------------------------------------------------


def test_status_fault_429_carries_retry_after_and_the_openai_error_body(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    fake_openai.enqueue(Fault("status", status=429, retry_after=2, message="Slow down"))

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-fake", messages=CHAT)

    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body == {
        "message": "Slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert oai.chat.completions.create(model="gpt-fake", messages=CHAT).choices
    assert fake_openai.attempts == 2


def test_status_faults_use_anthropic_and_ollama_error_shapes(
    fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic, fake_ollama: FakeOllama, llama: ollama.Client
) -> None:
    fake_anthropic.enqueue(Fault("status", status=529))
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model="c", max_tokens=8, messages=TURN)
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]

    fake_ollama.enqueue(Fault("status", status=503, message="server busy"))
    with pytest.raises(ollama.ResponseError) as busy:
        llama.chat(model="m", messages=USER)
    assert (busy.value.status_code, busy.value.error) == (503, "server busy")


def test_refuse_closes_the_connection_without_an_answer(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.enqueue(Fault("refuse"))

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-fake", messages=CHAT)
    assert fake_openai.attempts == 1 and fake_openai.disconnects == []


def test_hang_records_the_disconnect_when_the_client_gives_up(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fault("hang", seconds=30))

    with openai.OpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-fake", messages=CHAT)

    assert fake_openai.wait_for(lambda: len(fake_openai.disconnects) == 1, timeout=1.0)
    gone = fake_openai.disconnects[0]
    assert gone.disconnected_at is not None and gone.disconnected_at - started < 1.0
    assert fake_openai.wait_for(lambda: fake_openai.in_flight == 0, timeout=1.0)


def test_reset_mid_stream_makes_every_sdk_raise_after_the_first_chunks(
    fake_openai: FakeOpenAI,
    oai: openai.OpenAI,
    fake_anthropic: FakeAnthropic,
    claude: anthropic.Anthropic,
    fake_ollama: FakeOllama,
    llama: ollama.Client,
) -> None:
    for fake in (fake_openai, fake_anthropic, fake_ollama):
        fake.enqueue(Fault("reset_mid_stream", after_chunks=2))

    received: list[str] = []
    with (
        pytest.raises(openai.APIConnectionError),
        oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream,
    ):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    with (
        pytest.raises(Exception, match="peer closed connection"),
        claude.messages.create(model="c", max_tokens=8, messages=TURN, stream=True) as events,
    ):
        list(events)
    with pytest.raises(Exception, match="peer closed connection"):
        list(llama.chat(model="m", messages=USER, stream=True))

    assert received == ["", "Hell", "o fr"]  # the role delta and two content chunks arrived before the reset
    assert fake_openai.disconnects == []  # the fake hung up, not the client
    streamed = sse_data(openai_chat_raw(fake_openai, stream=True).text)
    assert streamed[-1] == "[DONE]"  # the fault was one-shot


def test_fragments_deliver_a_correct_stream_one_byte_at_a_time(
    fake_openai: FakeOpenAI, oai: openai.OpenAI, fake_anthropic: FakeAnthropic, claude: anthropic.Anthropic
) -> None:
    fake_openai.enqueue(Fault("fragments"), Fault("fragments"))
    fake_anthropic.enqueue(Fault("fragments"))

    with oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == Reply().text
    assert oai.chat.completions.create(model="g", messages=CHAT).choices[0].message.content == Reply().text
    with claude.messages.stream(model="c", max_tokens=8, messages=TURN) as events:
        assert events.get_final_text() == Reply().text


def test_bad_json_follows_the_good_chunks(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.enqueue(Fault("bad_json", after_chunks=1))

    received: list[str] = []
    with (
        pytest.raises(json.JSONDecodeError),
        oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream,
    ):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "Hell"]  # the role delta, then exactly one content chunk


def test_no_terminator_leaves_out_each_format_terminator(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_ollama: FakeOllama
) -> None:
    for fake in (fake_openai, fake_anthropic, fake_ollama):
        fake.enqueue(Fault("no_terminator"))

    openai_frames = sse_data(openai_chat_raw(fake_openai, stream=True).text)
    anthropic_stream = raw_post(
        fake_anthropic.url + "/v1/messages",
        {"model": "c", "max_tokens": 8, "messages": USER, "stream": True},
        ANTHROPIC_HEADERS,
    )
    ollama_lines = raw_post(fake_ollama.url + "/api/chat", {"model": "m", "messages": USER}).text.splitlines()

    assert "[DONE]" not in openai_frames
    assert all(json.loads(f)["choices"][0]["finish_reason"] is None for f in openai_frames)
    assert "".join(json.loads(f)["choices"][0]["delta"].get("content", "") for f in openai_frames) == Reply().text
    assert "message_stop" not in sse_events(anthropic_stream.text)
    assert sse_events(anthropic_stream.text)[-1] == "message_delta"
    assert ollama_lines and not any(json.loads(line)["done"] for line in ollama_lines)


def test_in_band_error_arrives_in_each_format_own_way(
    fake_openai: FakeOpenAI,
    oai: openai.OpenAI,
    fake_anthropic: FakeAnthropic,
    claude: anthropic.Anthropic,
    fake_ollama: FakeOllama,
    llama: ollama.Client,
) -> None:
    for fake in (fake_openai, fake_anthropic, fake_ollama):
        fake.enqueue(Fault("in_band_error", after_chunks=1, message="Model melted"))

    with (
        pytest.raises(openai.APIError, match="Model melted"),
        oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream,
    ):
        list(stream)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.create(model="c", max_tokens=8, messages=TURN, stream=True) as events,
    ):
        list(events)
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Model melted"}}
    with pytest.raises(ollama.ResponseError, match="Model melted"):
        list(llama.chat(model="m", messages=USER, stream=True))


def test_endless_stream_runs_until_the_client_leaves(fake_ollama: FakeOllama) -> None:
    fake_ollama.enqueue(Fault("endless", interval=0.005))

    with (
        httpx.Client(trust_env=False, timeout=5.0) as client,
        client.stream("POST", fake_ollama.url + "/api/chat", json={"model": "m", "messages": USER}) as response,
    ):
        lines = response.iter_lines()
        first = [json.loads(next(lines)) for _ in range(20)]

    assert all(line["done"] is False for line in first)
    assert fake_ollama.wait_for(lambda: len(fake_ollama.disconnects) == 1, timeout=2.0)


def test_stall_goes_silent_after_n_chunks_then_finishes(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.enqueue(Fault("stall", after_chunks=2, seconds=0.3))

    arrivals: list[tuple[float, str]] = []
    with oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((time.monotonic(), chunk.choices[0].delta.content))

    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals)]
    assert gaps[1] >= 0.25 and max(gaps[:1] + gaps[2:]) < 0.2  # silence only between chunks 2 and 3
    assert "".join(text for _, text in arrivals) == Reply().text


def test_huge_answers_are_the_requested_size(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.enqueue(Fault("huge", size=200_000), Fault("huge", size=50_000))

    body = openai_chat_raw(fake_openai)
    assert len(body.content) == 200_000
    assert body.json()["choices"][0]["message"]["content"].startswith("xxxx")
    stream = openai_chat_raw(fake_openai, stream=True)
    assert len(stream.content) >= 50_000 and sse_data(stream.text)[-1] == "[DONE]"


def test_stream_faults_on_a_single_body_mean_the_nearest_thing(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.enqueue(Fault("reset_mid_stream"), Fault("bad_json"), Fault("stall", seconds=0.2))

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="g", messages=CHAT)
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="g", messages=CHAT)
    started = time.monotonic()
    assert oai.chat.completions.create(model="g", messages=CHAT).choices[0].message.content == Reply().text
    assert time.monotonic() - started >= 0.2


def test_open_connections_count_what_clients_hold_and_keep_alive_off_closes_after_each_answer(
    fake_openai: FakeOpenAI,
) -> None:
    body = {"model": "g", "messages": CHAT}
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        assert client.post(fake_openai.base_url + "/chat/completions", json=body).status_code == 200
        assert fake_openai.open_connections == 1  # the client keeps its idle connection
        fake_openai.keep_alive = False
        answer = client.post(fake_openai.base_url + "/chat/completions", json=body)
        assert answer.status_code == 200 and answer.headers["connection"] == "close"
        assert fake_openai.wait_for(lambda: fake_openai.open_connections == 0, timeout=2.0)


def test_endless_single_body_sends_whitespace_until_the_client_leaves(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Fault("endless", interval=0.005))
    body = {"model": "g", "messages": CHAT}
    with (
        httpx.Client(trust_env=False, timeout=5.0) as client,
        client.stream("POST", fake_openai.base_url + "/chat/completions", json=body) as response,
    ):
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) >= 4096:
                break
    assert received.strip() == b""
    assert fake_openai.wait_for(lambda: len(fake_openai.disconnects) == 1, timeout=2.0)


def test_queued_behaviours_are_consumed_in_order_before_the_default(
    fake_openai: FakeOpenAI, oai: openai.OpenAI
) -> None:
    fake_openai.reply = Reply(text="default")
    fake_openai.enqueue(Fault("status", status=500), Reply(text="scripted"))

    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="g", messages=CHAT)
    texts = [oai.chat.completions.create(model="g", messages=CHAT).choices[0].message.content for _ in range(2)]
    assert texts == ["scripted", "default"]
    assert fake_openai.pending == 0

    fake_openai.enqueue(Fault("refuse"))
    fake_openai.reset()
    assert (fake_openai.requests, fake_openai.attempts, fake_openai.pending) == ([], 0, 0)


def test_reply_delay_and_chunk_delay_pace_the_answer(fake_openai: FakeOpenAI, oai: openai.OpenAI) -> None:
    fake_openai.reply = Reply(text="abcdefgh", delay=0.15, chunk_delay=0.05)

    started = time.monotonic()
    with oai.chat.completions.create(model="g", messages=CHAT, stream=True) as stream:
        first_at = None
        for _chunk in stream:
            if first_at is None:
                first_at = time.monotonic()
        finished = time.monotonic()

    assert first_at is not None and first_at - started >= 0.15
    assert finished - first_at >= 0.05  # two content chunks, one gap between them


async def test_in_flight_counts_concurrent_generation_requests(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = Reply(delay=0.3)

    async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="k", max_retries=0) as client:
        calls = [client.chat.completions.create(model="g", messages=CHAT) for _ in range(3)]
        running = asyncio.gather(*calls)
        assert await fake_openai.wait_for_async(lambda: fake_openai.in_flight == 3, timeout=2.0)
        results = await running

    assert len(results) == 3 and fake_openai.max_in_flight == 3
    assert fake_openai.wait_for(lambda: fake_openai.in_flight == 0, timeout=1.0)


def test_reply_and_fault_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="chunks"):
        Reply(text="abc", chunks=["ab"])
    with pytest.raises(ValueError, match="finish"):
        Reply(finish="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    assert Reply(tool_calls=[WEATHER]).effective_finish == "tool_calls"
    assert Reply(text="abc", chunks=["a", "bc"]).pieces() == ["a", "bc"]


def test_a_stopped_fake_can_start_again_on_a_new_port() -> None:
    fake = FakeOllama()
    with pytest.raises(RuntimeError):
        _ = fake.url
    with fake:
        first = fake.url
        assert raw_get(first + "/api/version").status_code == 200
    with fake:
        assert raw_get(fake.url + "/api/version").json()["version"] == "0.12.0"
    with pytest.raises(httpx.ConnectError):
        raw_get(first + "/api/version")
