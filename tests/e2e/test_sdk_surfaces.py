"""The official anthropic and ollama SDKs against Sluice over every upstream kind: count_tokens, Ollama's generate,
embed, legacy embeddings, list, show and ps, tool-call round trips with the result sent back, and the Anthropic
SDK's own view of the shared model routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import pytest

from tests.fakes import Reply, ToolCallSpec
from tests.support.rig import UPSTREAMS, Rig, every_kind

TEXT = Reply(text="It is sunny in Paris today.", prompt_tokens=321, completion_tokens=8)
CALL = Reply(
    text="",
    tool_calls=[ToolCallSpec("call_w1", "get_weather", {"city": "Paris"})],
    finish="tool_calls",
    prompt_tokens=40,
    completion_tokens=9,
)
GONE = {"name": "gone", "kind": "anthropic", "base_url": "http://127.0.0.1:9", "timeouts": {"connect": 1}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    down = {"name": "down-anthropic", "deployments": [{"provider": "gone", "model": "claude-fake"}]}
    with every_kind(Path(tmp_path_factory.mktemp("gw")), models=[down], providers=[GONE]) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _replies(rig: Rig) -> None:
    for fake in rig.fakes.values():
        fake.reset()
        fake.reply = TEXT


def counts(fake: Any) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/messages/count_tokens"]


# --- Anthropic: count_tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_count_tokens_is_exact_from_anthropic_and_a_marked_estimate_otherwise(rig: Rig, kind: str) -> None:
    fa = rig.fakes["anthropic"]
    with rig.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(
            model=f"up-{kind}",
            system="Answer briefly.",
            messages=[{"role": "user", "content": "What is the weather like in Paris this afternoon?"}],
            tools=[{"name": "get_weather", "input_schema": SCHEMA}],  # type: ignore[typeddict-item]
        )
    counted = raw.parse()
    body = json.loads(raw.http_response.text)
    if kind == "anthropic":
        assert counted.input_tokens == TEXT.prompt_tokens
        assert "estimated" not in body and "x-sluice-estimated" not in raw.headers
        [sent] = counts(fa)
        assert sent.json is not None and sent.json["model"] == "claude-fake"
        assert sent.json["system"] == "Answer briefly." and sent.json["tools"][0]["name"] == "get_weather"
        assert "max_tokens" not in sent.json
    else:
        assert 10 <= counted.input_tokens < TEXT.prompt_tokens  # Sluice's own estimate of this short prompt
        assert body["estimated"] is True and raw.headers["x-sluice-estimated"] == "true"
        assert counts(fa) == []
    assert all(fake.attempts == 0 for fake in rig.fakes.values()), "counting generated nothing"


def test_count_tokens_refused_by_the_anthropic_upstream_reaches_the_caller(rig: Rig) -> None:
    """Not papered over with an estimate: the caller's request is wrong, and Anthropic said why."""
    with rig.anthropic() as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model="up-anthropic", messages=[{"role": "user"}])  # type: ignore[typeddict-item]
    assert "messages.0.content" in str(caught.value)
    assert len(counts(rig.fakes["anthropic"])) == 1


def test_count_tokens_from_an_unreachable_anthropic_upstream_is_a_marked_estimate(rig: Rig) -> None:
    document: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x" * 400}}
    with rig.anthropic() as client:
        raw = client.messages.with_raw_response.count_tokens(
            model="down-anthropic", messages=[{"role": "user", "content": [document]}]
        )
    # A document block, which Sluice does not translate, is estimated from the raw body rather than refused.
    assert raw.status_code == 200 and raw.headers["x-sluice-estimated"] == "true"
    assert raw.parse().input_tokens > 0


def test_count_tokens_bad_input_is_an_anthropic_error(rig: Rig) -> None:
    with rig.anthropic() as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model="up-anthropic", messages=[{"role": "robot", "content": "x"}])  # type: ignore[typeddict-item]
    assert "messages[0].role" in str(caught.value)
    assert counts(rig.fakes["anthropic"]) == []


# --- Ollama: generate, embeddings, list, show, ps ---------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", UPSTREAMS)
def test_ollama_generate(rig: Rig, kind: str, stream: bool) -> None:
    with rig.ollama() as client:
        if stream:
            parts = list(client.generate(model=f"up-{kind}", prompt="Weather?", system="Be brief.", stream=True))
        else:
            parts = [client.generate(model=f"up-{kind}", prompt="Weather?", system="Be brief.", stream=False)]
    text = "".join(p.response or "" for p in parts)
    last = parts[-1]
    assert last.done and last.done_reason == "stop"
    if kind == "mock":
        assert text and last.eval_count == len(text.split(" "))
        return
    assert text == TEXT.text
    assert (last.prompt_eval_count, last.eval_count) == (TEXT.prompt_tokens, TEXT.completion_tokens)
    sent = rig.fakes[kind].requests[-1]
    assert sent.json is not None
    if kind == "ollama":
        assert sent.path == "/api/generate" and sent.json["prompt"] == "Weather?" and sent.json["system"] == "Be brief."
    elif kind == "anthropic":
        assert sent.json["system"] == "Be brief." and sent.json["messages"] == [{"role": "user", "content": "Weather?"}]
    else:
        assert sent.path == "/v1/completions" and sent.json["prompt"] == "Weather?"


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_ollama_embed_and_legacy_embeddings(rig: Rig, kind: str) -> None:
    with rig.ollama() as client:
        if kind == "anthropic":
            for call in (
                lambda: client.embed(model="up-anthropic", input=["a"]),
                lambda: client.embeddings(model="up-anthropic", prompt="a"),
            ):
                with pytest.raises(ollama.ResponseError) as caught:
                    call()
                assert caught.value.status_code == 400 and "embeddings" in caught.value.error
            assert rig.fakes["anthropic"].attempts == 0
            return
        current = client.embed(model=f"up-{kind}", input=["first", "second"])
        legacy = client.embeddings(model=f"up-{kind}", prompt="first")
    assert len(current.embeddings) == 2 and len(current.embeddings[0]) > 0
    assert list(legacy.embedding) == pytest.approx(list(current.embeddings[0]), rel=1e-6)
    if kind in rig.fakes:
        assert {r.path for r in rig.fakes[kind].requests} == (
            {"/api/embed", "/api/embeddings"} if kind == "ollama" else {"/v1/embeddings"}
        )


def test_ollama_list_names_every_model_the_key_may_use(rig: Rig) -> None:
    with rig.ollama() as client:
        names = {m.model for m in client.list().models}
    assert {f"up-{kind}" for kind in UPSTREAMS} <= names


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_ollama_show(rig: Rig, kind: str) -> None:
    with rig.ollama() as client:
        shown = client.show(f"up-{kind}")
    assert shown.details is not None and shown.modified_at is not None
    if kind == "ollama":
        assert shown.modelfile is not None and "FROM llama-fake:latest" in shown.modelfile  # the server's own
        assert rig.fakes["ollama"].requests[-1].json == {"model": "llama-fake:latest"}
        return
    expected = {
        "openai": ["completion", "tools", "insert", "vision", "thinking"],
        "anthropic": ["completion", "tools", "vision", "thinking"],
        "mock": ["completion", "tools", "thinking"],
    }[kind]
    assert shown.capabilities == expected and shown.details.family == kind


def test_ollama_ps_lists_the_loaded_ollama_models_under_their_public_names(rig: Rig) -> None:
    with rig.ollama() as client:
        running = client.ps().models
    assert [m.model for m in running] == ["up-ollama"]
    assert running[0].size_vram and running[0].context_length == 8192


# --- tool-call round trips --------------------------------------------------------------------------------------


def assert_result_reached(fake: Any, kind: str, call_id: str) -> None:
    """The upstream got the tool result back in its own format, matched to its call."""
    sent = fake.requests[-1].json
    assert sent is not None
    messages = sent["messages"]
    if kind == "openai":
        assistant = next(m for m in messages if m["role"] == "assistant")
        assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
        tool = next(m for m in messages if m["role"] == "tool")
        assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"] and tool["content"] == "18 C, sunny"
    elif kind == "anthropic":
        assert messages[1]["content"][0] == {
            "type": "tool_use",
            "id": call_id,
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        result = messages[2]["content"][0]
        assert result["type"] == "tool_result" and result["tool_use_id"] == call_id
    else:
        assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
        assert messages[2] == {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"}


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_anthropic_tool_use_round_trip(rig: Rig, kind: str) -> None:
    fake = rig.fakes.get(kind)
    if fake is not None:
        fake.enqueue(CALL, TEXT)
    tools: Any = [{"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}]
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    with rig.anthropic() as client:
        first = client.messages.create(model=f"up-{kind}", max_tokens=200, tools=tools, messages=[question])
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        assert use.name == "get_weather"
        final = client.messages.create(
            model=f"up-{kind}",
            max_tokens=200,
            tools=tools,
            messages=[
                question,
                {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C, sunny"}]},
            ],
        )
    assert final.stop_reason == "end_turn"
    text = "".join(b.text for b in final.content if b.type == "text")
    if fake is None:
        assert text  # the mock answers in words once the tool has answered
        return
    assert use.input == {"city": "Paris"} and text == TEXT.text
    assert_result_reached(fake, kind, use.id)


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_ollama_tool_call_round_trip(rig: Rig, kind: str) -> None:
    fake = rig.fakes.get(kind)
    if fake is not None:
        fake.enqueue(CALL, TEXT)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
    question = {"role": "user", "content": "Weather in Paris?"}
    with rig.ollama() as client:
        first = client.chat(model=f"up-{kind}", messages=[question], tools=tools, stream=False)
        [call] = first.message.tool_calls or []
        assert call.function.name == "get_weather"
        final = client.chat(
            model=f"up-{kind}",
            messages=[
                question,
                first.message,
                {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"},
            ],
            tools=tools,
            stream=False,
        )
    assert not final.message.tool_calls and final.done_reason == "stop"
    if fake is None:
        assert final.message.content
        return
    assert dict(call.function.arguments) == {"city": "Paris"} and final.message.content == TEXT.text
    if kind == "anthropic":
        # Ollama carries no call ids: Sluice gave the call one and matched the result to it by name.
        sent = fake.requests[-1].json
        assert sent is not None
        assert sent["messages"][2]["content"][0]["tool_use_id"] == sent["messages"][1]["content"][0]["id"]
        assert sent["messages"][2]["content"][0]["content"] == [{"type": "text", "text": "18 C, sunny"}]
    else:
        assert_result_reached(fake, kind, "")


# --- the shared model routes, as the Anthropic SDK sees them ----------------------------------------------------


def test_anthropic_sdk_lists_and_retrieves_models_in_its_own_shape(rig: Rig) -> None:
    with rig.anthropic() as client:
        listed = {m.id: m for m in client.models.list()}
        one = client.models.retrieve("up-ollama")
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.models.retrieve("no-such-model")
    assert {f"up-{kind}" for kind in UPSTREAMS} <= set(listed)
    assert listed["up-openai"].type == "model" and listed["up-openai"].display_name == "up-openai"
    assert one.id == "up-ollama" and one.created_at is not None
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]


def test_anthropic_sdk_with_a_wrong_key_gets_an_anthropic_401_from_the_model_routes(rig: Rig) -> None:
    with (
        anthropic.Anthropic(base_url=rig.gateway.url, api_key="sk-sl-wrong", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        client.models.list()
    assert caught.value.response.json()["error"]["type"] == "authentication_error"
