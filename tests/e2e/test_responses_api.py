"""The Responses API through Sluice with the official ``openai`` SDK: create, stream, parse, retrieve, delete, input
items and a two-turn ``previous_response_id`` conversation, against the mock and fake OpenAI (passed through, and
translated for a chat-completions server), Anthropic and Ollama upstreams. Every Response and stream event Sluice
emits is held to OpenAI's published schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest

from tests.fakes import FakeUpstream, Fault, Reply, ToolCallSpec
from tests.support.keys import NewKey, create_key
from tests.support.openapi import spec_available, validate
from tests.support.rig import Rig, every_kind

KINDS = ("mock", "openai", "openai-responses", "anthropic", "ollama")
TEXT = Reply(text="It is sunny in Paris today.", prompt_tokens=21, completion_tokens=8)
CALL = Reply(text="", tool_calls=[ToolCallSpec("call_w1", "get_weather", {"city": "Paris"})], finish="tool_calls")
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Forecast(pydantic.BaseModel):
    city: str
    days: int


FORECAST = Reply(text='{"city":"Paris","days":3}', prompt_tokens=30, completion_tokens=9)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    broken = {"name": "mk-broken", "kind": "mock", "mock": {"fail_mid_stream": True}}
    broken_model = {"name": "broken", "deployments": [{"provider": "mk-broken", "model": "mock-1"}]}
    with every_kind(Path(tmp_path_factory.mktemp("gw")), providers=[broken], models=[broken_model]) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _replies(rig: Rig) -> None:
    for fake in rig.fakes.values():
        fake.reset()
        fake.reply = TEXT


def fake_of(rig: Rig, kind: str) -> FakeUpstream | None:
    return rig.fakes.get("openai" if kind == "openai-responses" else kind)


def last_body(rig: Rig, kind: str) -> dict[str, Any]:
    fake = fake_of(rig, kind)
    assert fake is not None
    generated = [
        r
        for r in fake.requests
        if r.json is not None and r.path.endswith(("/chat/completions", "/responses", "/v1/messages", "/api/chat"))
    ]
    body = generated[-1].json
    assert body is not None
    return body


def model(kind: str) -> str:
    return f"up-{kind}"


def raw_post(rig: Rig, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {rig.gateway.master_key}"}
    with httpx.Client(base_url=rig.gateway.url, headers=headers, timeout=20) as http:
        return http.post("/v1/responses", json=body)


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


# --- create and stream ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_create_answers_with_a_valid_response(rig: Rig, kind: str) -> None:
    with rig.openai() as client:
        response = client.responses.create(
            model=model(kind), input="Weather in Paris?", instructions="Be brief.", max_output_tokens=64
        )
    assert response.status == "completed" and response.output_text
    if kind != "mock":
        assert response.output_text == TEXT.text
        assert (response.usage.input_tokens, response.usage.output_tokens) == (
            TEXT.prompt_tokens,
            TEXT.completion_tokens,
        )  # type: ignore[union-attr]
        sent = last_body(rig, kind)
        if kind == "openai-responses":
            assert sent["instructions"] == "Be brief." and sent["input"] == "Weather in Paris?"
        elif kind == "anthropic":
            assert sent["system"] == "Be brief." and sent["max_tokens"] == 64
        else:
            assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    if spec_available():
        validate("Response", raw_post(rig, {"model": model(kind), "input": "Hi"}).json())


@pytest.mark.parametrize("kind", KINDS)
def test_stream_events_are_valid_and_complete(rig: Rig, kind: str) -> None:
    resp = raw_post(rig, {"model": model(kind), "input": "Weather?", "stream": True})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    if spec_available():
        for event in events:
            validate("ResponseStreamEvent", event)
    with rig.openai() as client, client.responses.stream(model=model(kind), input="Weather?") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and final.status == "completed"
    if kind != "mock":
        assert final.output_text == TEXT.text


def test_a_stream_that_fails_midway_ends_with_error_and_response_failed(rig: Rig) -> None:
    resp = raw_post(rig, {"model": "broken", "input": "Weather?", "stream": True})
    events = sse_events(resp.text)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    if spec_available():
        for event in events:
            validate("ResponseStreamEvent", event)
    with rig.openai() as client:
        with client.responses.stream(model="broken", input="Weather?") as stream:
            kinds = [e.type for e in stream]
        assert kinds[-1] == "response.failed"
        with pytest.raises(openai.NotFoundError):  # a failed answer is not stored
            client.responses.retrieve(events[-1]["response"]["id"])


def test_a_passed_through_stream_cut_by_its_upstream_ends_with_an_error_event(rig: Rig) -> None:
    fake = rig.fakes["openai"]
    fake.enqueue(Fault("reset_mid_stream", after_chunks=2))
    resp = raw_post(rig, {"model": "up-openai-responses", "input": "Weather?", "stream": True})
    events = sse_events(resp.text)
    assert events[-1]["type"] == "error" and "upstream" in events[-1]["message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    if spec_available():
        validate("ResponseStreamEvent", events[-1])


@pytest.mark.parametrize("kind", KINDS)
def test_function_calls_and_their_outputs_round_trip(rig: Rig, kind: str) -> None:
    for fake in rig.fakes.values():
        fake.reply = CALL
    tool = {**WEATHER_TOOL, "strict": kind != "ollama"}  # Ollama has no strict tools (see the next test)
    with rig.openai() as client:
        first = client.responses.create(model=model(kind), input="Weather in Paris?", tools=[tool])  # type: ignore[list-item]
        [call] = [item for item in first.output if item.type == "function_call"]
        assert call.name == "get_weather" and json.loads(call.arguments)["city"]
        for fake in rig.fakes.values():
            fake.reply = TEXT
        second = client.responses.create(
            model=model(kind),
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}],
            tools=[tool],  # type: ignore[list-item]
        )
    assert second.output_text
    if kind in ("openai", "ollama"):
        roles = [m["role"] for m in last_body(rig, kind)["messages"]]
        assert roles == ["user", "assistant", "tool"]
    elif kind == "anthropic":
        sent = last_body(rig, kind)["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"] and sent[2]["content"][0][
            "type"
        ] == "tool_result"
    elif kind == "openai-responses":
        sent = last_body(rig, kind)
        assert "previous_response_id" not in sent
        assert [i.get("type", "message") for i in sent["input"]] == ["message", "function_call", "function_call_output"]


def test_strict_tools_to_ollama_are_refused_naming_the_field(rig: Rig) -> None:
    with rig.openai() as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="up-ollama", input="Weather?", tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert caught.value.param == "tools[0].strict"  # type: ignore[attr-defined]
    assert rig.generated("ollama") == 0


# --- parse (structured output) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_parse_returns_the_typed_result(rig: Rig, kind: str) -> None:
    for fake in rig.fakes.values():
        fake.reply = FORECAST
    with rig.openai() as client:
        parsed = client.responses.parse(model=model(kind), input="Forecast for Paris", text_format=Forecast)
    assert isinstance(parsed.output_parsed, Forecast)
    if kind == "mock":
        return
    assert parsed.output_parsed == Forecast(city="Paris", days=3)
    sent = last_body(rig, kind)
    if kind == "openai-responses":
        assert sent["text"]["format"]["type"] == "json_schema"
    elif kind == "openai":
        assert (
            sent["response_format"]["type"] == "json_schema"
            and sent["response_format"]["json_schema"]["strict"] is True
        )
    elif kind == "anthropic":
        assert sent["output_config"]["format"]["schema"]["properties"]["days"] == {"title": "Days", "type": "integer"}
    else:
        assert sent["format"]["required"] == ["city", "days"]


# --- stored responses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_two_turns_with_previous_response_id_then_retrieve_and_delete(rig: Rig, kind: str) -> None:
    with rig.openai() as client:
        first = client.responses.create(model=model(kind), input="My name is Ada.")
        second = client.responses.create(model=model(kind), input="What is my name?", previous_response_id=first.id)
        assert second.previous_response_id == first.id
        if kind != "mock":
            sent = last_body(rig, kind)
            conversation = json.dumps(sent)
            assert "My name is Ada." in conversation and first.output_text in conversation
        got = client.responses.retrieve(second.id)
        assert got.id == second.id and got.output_text == second.output_text
        items = client.responses.input_items.list(second.id)
        assert [i.type for i in items.data] == ["message"]
        client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model=model(kind), input="x", previous_response_id=first.id)


def test_store_false_keeps_nothing(rig: Rig) -> None:
    with rig.openai() as client:
        response = client.responses.create(model="up-mock", input="Forget me", store=False)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response.id)


def test_a_stored_response_is_visible_only_to_its_owner(rig: Rig) -> None:
    async def two_keys() -> tuple[NewKey, NewKey]:
        db = rig.gateway.services.db
        return await create_key(db, "a", role="member"), await create_key(db, "b", role="member")

    first, second = rig.gateway.call(two_keys())
    base = rig.gateway.url + "/v1"
    mine = openai.OpenAI(base_url=base, api_key=first.secret, max_retries=0)
    theirs = openai.OpenAI(base_url=base, api_key=second.secret, max_retries=0)
    with mine, theirs:
        response = mine.responses.create(model="up-mock", input="Private")
        assert mine.responses.retrieve(response.id).id == response.id
        with pytest.raises(openai.NotFoundError):
            theirs.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.create(model="up-mock", input="x", previous_response_id=response.id)


# --- refusals and counting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mock", "anthropic", "ollama", "openai"])
def test_a_built_in_tool_sluice_cannot_run_is_refused_naming_it(rig: Rig, kind: str) -> None:
    with rig.openai() as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=model(kind), input="Search", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type" and "web_search" in caught.value.message  # type: ignore[attr-defined]
    assert rig.generated(kind) == 0


def test_a_built_in_tool_passes_through_to_an_upstream_that_runs_it(rig: Rig) -> None:
    with rig.openai() as client:
        response = client.responses.create(model="up-openai-responses", input="Search", tools=[{"type": "web_search"}])
    assert response.output_text == TEXT.text
    assert last_body(rig, "openai-responses")["tools"] == [{"type": "web_search"}]


@pytest.mark.parametrize("kind", ["mock", "openai-responses", "anthropic"])
def test_input_tokens(rig: Rig, kind: str) -> None:
    with rig.openai() as client:
        raw = client.responses.input_tokens.with_raw_response.count(model=model(kind), input="How many tokens is this?")
    counted = raw.parse()
    if kind == "openai-responses":
        assert counted.input_tokens == TEXT.prompt_tokens and "x-sluice-estimated" not in raw.headers
    else:
        assert counted.input_tokens > 0 and raw.headers["x-sluice-estimated"] == "true"


def test_bad_input_is_an_openai_error_naming_the_field(rig: Rig) -> None:
    with rig.openai() as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="up-mock", input=[{"type": "message", "role": "robot", "content": "x"}])  # type: ignore[list-item]
    assert caught.value.param == "input[0].role"  # type: ignore[attr-defined]
