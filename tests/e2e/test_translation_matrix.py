"""Any client format to any upstream: the same answer through every surface, streamed or not.

Each cell drives one official SDK (openai, anthropic, ollama) against one upstream kind (fake OpenAI, fake
Anthropic, fake Ollama, the built-in mock) and normalises what the SDK parsed: text, tool calls, stop reason and
usage must be identical across the surfaces for the same upstream answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest

from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, Fault, Reply, ToolCallSpec
from tests.support.openapi import spec_available, validate
from tests.support.server import SluiceServer, make_settings

TEXT = Reply(text="The quick answer is forty-two.", prompt_tokens=21, completion_tokens=9)
TOOLS = Reply(
    text="",
    tool_calls=[ToolCallSpec("call_abc", "get_weather", {"city": "Paris", "unit": "celsius"})],
    finish="tool_calls",
    prompt_tokens=33,
    completion_tokens=12,
)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
UPSTREAMS = ["openai", "anthropic", "ollama", "mock"]
SURFACES = ["openai", "anthropic", "ollama"]


@dataclass(frozen=True)
class Answer:
    text: str
    tool_calls: tuple[tuple[str, str], ...]  # (name, arguments as sorted JSON)
    finish: str
    usage: tuple[int, int]


def _args(value: Any) -> str:
    parsed = json.loads(value) if isinstance(value, str) else value
    return json.dumps(parsed, sort_keys=True)


@dataclass
class Rig:
    gateway: SluiceServer
    fakes: dict[str, Any]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with FakeOpenAI() as fo, FakeAnthropic() as fa, FakeOllama() as fl:
        config = {
            "providers": [
                {"name": "oa", "kind": "openai", "base_url": fo.base_url},
                {"name": "an", "kind": "anthropic", "base_url": fa.url},
                {"name": "ol", "kind": "ollama", "base_url": fl.url},
            ],
            "models": [
                {"name": "up-openai", "deployments": [{"provider": "oa", "model": "gpt-fake"}]},
                {"name": "up-anthropic", "deployments": [{"provider": "an", "model": "claude-fake"}]},
                {"name": "up-ollama", "deployments": [{"provider": "ol", "model": "llama-fake:latest"}]},
                {"name": "up-mock", "deployments": [{"provider": "mock", "model": "mock-1"}]},
            ],
        }
        with SluiceServer(make_settings(Path(tmp_path_factory.mktemp("matrix")), config)) as gateway:
            yield Rig(gateway, {"openai": fo, "anthropic": fa, "ollama": fl})


# --- one client per surface, each returning the normalised Answer ------------------------------------------


def via_openai(gw: SluiceServer, model: str, stream: bool, tools: bool) -> Answer:
    kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "What is the answer?"}]}
    if tools:
        kwargs["tools"] = [{"type": "function", "function": WEATHER}]
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.master_key, max_retries=0) as client:
        if not stream:
            resp = client.chat.completions.create(**kwargs)
            message = resp.choices[0].message
            calls = tuple((c.function.name, _args(c.function.arguments)) for c in message.tool_calls or [])  # type: ignore[union-attr]
            assert resp.usage is not None
            return Answer(
                message.content or "",
                calls,
                resp.choices[0].finish_reason,
                (resp.usage.prompt_tokens, resp.usage.completion_tokens),
            )
        text, finish, usage = "", "", (0, 0)
        pieces: dict[int, list[str]] = {}
        for chunk in client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
            if chunk.usage:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    entry = pieces.setdefault(call.index, ["", ""])
                    if call.function and call.function.name:
                        entry[0] = call.function.name
                    entry[1] += (call.function.arguments or "") if call.function else ""
        calls = tuple((name, _args(args)) for name, args in (pieces[i] for i in sorted(pieces)))
        return Answer(text, calls, finish, usage)


def via_anthropic(gw: SluiceServer, model: str, stream: bool, tools: bool) -> Answer:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "What is the answer?"}],
    }
    if tools:
        kwargs["tools"] = [
            {"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}
        ]
    with anthropic.Anthropic(base_url=gw.url, api_key=gw.master_key, max_retries=0) as client:
        if stream:
            with client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = tuple((b.name, _args(b.input)) for b in message.content if b.type == "tool_use")
    finish = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}[str(message.stop_reason)]
    return Answer(text, calls, finish, (message.usage.input_tokens, message.usage.output_tokens))


def via_ollama(gw: SluiceServer, model: str, stream: bool, tools: bool) -> Answer:
    kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "What is the answer?"}]}
    if tools:
        kwargs["tools"] = [{"type": "function", "function": WEATHER}]
    client = ollama.Client(host=gw.url, headers={"Authorization": f"Bearer {gw.master_key}"})
    try:
        parts = list(client.chat(**kwargs, stream=True)) if stream else [client.chat(**kwargs, stream=False)]
    finally:
        client._client.close()
    text = "".join(p.message.content or "" for p in parts)
    calls = tuple(
        (c.function.name, _args(dict(c.function.arguments))) for p in parts for c in p.message.tool_calls or []
    )
    last = parts[-1]
    finish = "tool_calls" if calls else str(last.done_reason)
    return Answer(text, calls, finish, (int(last.prompt_eval_count or 0), int(last.eval_count or 0)))


CLIENTS: dict[str, Callable[[SluiceServer, str, bool, bool], Answer]] = {
    "openai": via_openai,
    "anthropic": via_anthropic,
    "ollama": via_ollama,
}


def expected(reply: Reply) -> Answer:
    calls = tuple((c.name, _args(c.arguments)) for c in reply.tool_calls)
    return Answer(reply.text, calls, reply.finish, (reply.prompt_tokens, reply.completion_tokens))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("reply", [TEXT, TOOLS], ids=["text", "tools"])
def test_every_surface_gives_the_upstream_answer(
    rig: Rig, surface: str, upstream: str, stream: bool, reply: Reply
) -> None:
    fake = rig.fakes[upstream]
    fake.reply = reply
    answer = CLIENTS[surface](rig.gateway, f"up-{upstream}", stream, bool(reply.tool_calls))
    assert answer == expected(reply)


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
def test_the_mock_gives_the_same_answer_on_every_surface(rig: Rig, tools: bool) -> None:
    answers = {
        (surface, stream): CLIENTS[surface](rig.gateway, "up-mock", stream, tools)
        for surface in SURFACES
        for stream in (False, True)
    }
    first = next(iter(answers.values()))
    assert first.text or first.tool_calls
    for key, answer in answers.items():
        assert answer.text == first.text, key
        assert answer.tool_calls == first.tool_calls, key
        assert answer.finish == first.finish, key
        assert answer.usage[1] == first.usage[1], key  # completion tokens; prompt estimates may differ per format


SDK_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.APIError,
    "anthropic": anthropic.APIError,
    "ollama": ollama.ResponseError,
}


@pytest.mark.parametrize("fault", ["reset_mid_stream", "in_band_error", "bad_json"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("surface", SURFACES)
def test_a_stream_that_fails_midway_ends_with_the_callers_own_error(
    rig: Rig, surface: str, upstream: str, fault: str
) -> None:
    """Never a silent clean stop: each SDK sees its API's own error event and raises."""
    fake = rig.fakes[upstream]
    fake.reply = TEXT
    fake.enqueue(Fault(fault, after_chunks=2))
    with pytest.raises(SDK_ERRORS[surface]):
        CLIENTS[surface](rig.gateway, f"up-{upstream}", True, False)


@pytest.mark.skipif(not spec_available(), reason="../shared/specs/openai-openapi.yaml is absent")
@pytest.mark.parametrize("upstream", ["anthropic", "ollama"])
def test_translated_openai_answers_match_openai_schemas(rig: Rig, upstream: str) -> None:
    rig.fakes[upstream].reply = TOOLS
    body = {
        "model": f"up-{upstream}",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": WEATHER}],
    }
    with rig.gateway.client() as http:
        validate("CreateChatCompletionResponse", http.post("/v1/chat/completions", json=body).json())
        text = http.post(
            "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}
        ).text
    payloads = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    for payload in payloads[:-1]:
        validate("CreateChatCompletionStreamResponse", json.loads(payload))


def test_openai_embeddings_from_an_ollama_upstream(rig: Rig) -> None:
    with openai.OpenAI(base_url=rig.gateway.url + "/v1", api_key=rig.gateway.master_key, max_retries=0) as client:
        floats = client.embeddings.create(model="up-ollama", input=["a", "b"], encoding_format="float")
        b64 = client.embeddings.create(model="up-ollama", input=["a", "b"])
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 4
    assert b64.data[1].embedding == pytest.approx(floats.data[1].embedding, rel=1e-6)
    sent = rig.fakes["ollama"].requests[-1]
    assert sent.path == "/api/embed" and sent.json is not None and sent.json["input"] == ["a", "b"]
