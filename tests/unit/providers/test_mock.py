"""The mock provider: what it honours (max_tokens, stop sequences, JSON mode, thinking) and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.canonical import (
    ChatRequest,
    Finish,
    Message,
    ReasoningDelta,
    ResponseFormat,
    TextDelta,
    TextPart,
    UsageUpdate,
)
from sluice.config import MockOptions, ProviderConfig, Timeouts
from sluice.errors import Unsupported
from sluice.providers.base import Target
from sluice.providers.mock import REASONING_TOKENS, MockProvider

TARGET = Target("mock-1", Timeouts())


def mock(**options: Any) -> MockProvider:
    return MockProvider(ProviderConfig(name="m", kind="mock", mock=MockOptions(**options)))


def ask(**fields: Any) -> ChatRequest:
    return ChatRequest("mock-1", [Message("user", [TextPart("Tell me about rivers")])], **fields)


async def test_a_stop_sequence_cuts_the_answer_where_it_first_appears() -> None:
    provider = mock(reply="the river flows to the sea and the river ends")
    answer = await provider.chat(ask(stop=["sea", "ends"]), TARGET)
    assert answer.choices[0].message.text() == "the river flows to the "
    assert answer.choices[0].finish_reason == "stop"
    unstopped = await provider.chat(ask(stop=["lake"], max_tokens=3), TARGET)
    assert unstopped.choices[0].message.text() == "the river flows " and unstopped.choices[0].finish_reason == "length"


async def test_json_mode_answers_a_json_object() -> None:
    answer = await mock(reply='say "hi"').chat(ask(response_format=ResponseFormat("json_object")), TARGET)
    assert json.loads(answer.choices[0].message.text()) == {"answer": 'say "hi"'}


async def test_thinking_comes_first_and_is_counted_as_output() -> None:
    provider = mock(reply_tokens=4)
    plain = await provider.chat(ask(), TARGET)
    thought = await provider.chat(ask(think="high"), TARGET)
    assert plain.choices[0].message.reasoning is None
    assert thought.choices[0].message.reasoning and thought.choices[0].message.text() == plain.choices[0].message.text()
    assert thought.usage is not None and plain.usage is not None
    assert thought.usage.completion_tokens == plain.usage.completion_tokens + REASONING_TOKENS
    events = [e async for e in provider.stream(ask(think=True), TARGET)]
    kinds = [type(e) for e in events if isinstance(e, ReasoningDelta | TextDelta)]
    assert kinds == [ReasoningDelta] * REASONING_TOKENS + [TextDelta] * 4
    assert isinstance(events[-2], Finish) and isinstance(events[-1], UsageUpdate)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"native": {"openai": {"logit_bias": {"1": 5}}}}, "logit_bias"),
        ({"native": {"ollama": {"options": {"mirostat": 2}}}}, "options.mirostat"),
    ],
)
async def test_what_the_mock_cannot_do_is_refused_before_it_answers(fields: dict[str, Any], param: str) -> None:
    provider = mock()
    with pytest.raises(Unsupported) as caught:
        await provider.chat(ask(**fields), TARGET)
    assert caught.value.param == param
    with pytest.raises(Unsupported):
        await anext(provider.stream(ask(**fields), TARGET))


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
    "additionalProperties": False,
}


async def test_a_json_schema_answer_is_an_instance_of_the_schema_and_deterministic() -> None:
    from jsonschema import validate

    fmt = ResponseFormat("json_schema", WEATHER_SCHEMA, "weather", True)
    provider = mock()
    first = await provider.chat(ask(response_format=fmt), TARGET)
    again = await provider.chat(ask(response_format=fmt), TARGET)
    text = first.choices[0].message.text()
    validate(json.loads(text), WEATHER_SCHEMA)
    assert text == again.choices[0].message.text()
    streamed = "".join(
        [e.text async for e in provider.stream(ask(response_format=fmt), TARGET) if isinstance(e, TextDelta)]
    )
    assert streamed == text


async def test_tool_arguments_are_valid_for_the_tool_parameters() -> None:
    from jsonschema import validate

    from sluice.canonical import Tool

    answer = await mock().chat(ask(tools=[Tool("weather", parameters=WEATHER_SCHEMA, strict=True)]), TARGET)
    [call] = answer.choices[0].message.tool_calls
    validate(json.loads(call.arguments), WEATHER_SCHEMA)
    open_tool = await mock().chat(ask(tools=[Tool("lookup")]), TARGET)
    assert json.loads(open_tool.choices[0].message.tool_calls[0].arguments) == {"input": "Tell me about rivers"}
