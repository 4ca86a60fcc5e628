"""Structured outputs across formats through Sluice: the openai SDK's ``chat.completions.parse`` and the anthropic
SDK's ``messages.parse`` against every upstream kind, each reaching its upstream in that upstream's native form,
and plain JSON mode to Anthropic through the forced-tool-call fallback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from sluice.codecs.anthropic.structured import JSON_TOOL
from tests.fakes import Reply, ToolCallSpec
from tests.support.rig import UPSTREAMS, Rig, every_kind


class Forecast(pydantic.BaseModel):
    city: str
    days: int


FORECAST = Reply(text='{"city":"Paris","days":3}', prompt_tokens=30, completion_tokens=9)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with every_kind(Path(tmp_path_factory.mktemp("gw"))) as rig:
        yield rig


@pytest.fixture(autouse=True)
def _replies(rig: Rig) -> None:
    for fake in rig.fakes.values():
        fake.reset()
        fake.reply = FORECAST


def sent(rig: Rig, kind: str) -> dict[str, Any]:
    fake = rig.fakes[kind]
    body = fake.requests[-1].json
    assert body is not None
    return body


def assert_native_schema(rig: Rig, kind: str, strict: bool | None) -> None:
    """The schema reached the upstream in its own native form."""
    if kind == "mock":
        return
    body = sent(rig, kind)
    if kind == "openai":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["city", "days"]
        assert fmt["json_schema"].get("strict") is strict
    elif kind == "anthropic":
        schema = body["output_config"]["format"]["schema"]
        assert schema["required"] == ["city", "days"] and schema["additionalProperties"] is False
    else:
        assert body["format"]["required"] == ["city", "days"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", UPSTREAMS)
def test_openai_chat_completions_parse(rig: Rig, kind: str, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": "Forecast for Paris"}]
    with rig.openai() as client:
        if stream:
            with client.chat.completions.stream(model=f"up-{kind}", messages=messages, response_format=Forecast) as s:
                for _ in s:
                    pass
                parsed = s.get_final_completion().choices[0].message.parsed
        else:
            completion = client.chat.completions.parse(model=f"up-{kind}", messages=messages, response_format=Forecast)
            parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Forecast)
    if kind != "mock":
        assert parsed == Forecast(city="Paris", days=3)
    assert_native_schema(rig, kind, strict=True)


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_anthropic_messages_parse(rig: Rig, kind: str) -> None:
    with rig.anthropic() as client:
        message = client.messages.parse(
            model=f"up-{kind}",
            max_tokens=200,
            messages=[{"role": "user", "content": "Forecast for Paris"}],
            output_format=Forecast,
        )
    assert isinstance(message.parsed_output, Forecast)
    if kind != "mock":
        assert message.parsed_output == Forecast(city="Paris", days=3)
    assert_native_schema(rig, kind, strict=True)


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_anthropic_strict_tools_reach_every_upstream_that_has_them(rig: Rig, kind: str) -> None:
    for fake in rig.fakes.values():
        fake.reply = Reply(
            text="", tool_calls=[ToolCallSpec("toolu_1", "weather", {"city": "Paris"})], finish="tool_calls"
        )
    tool: Any = {
        "name": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
    import anthropic

    with rig.anthropic() as client:
        if kind == "ollama":
            with pytest.raises(anthropic.BadRequestError) as caught:
                client.messages.create(
                    model="up-ollama", max_tokens=50, messages=[{"role": "user", "content": "x"}], tools=[tool]
                )
            assert "'tools[0].strict'" in caught.value.message
            return
        message = client.messages.create(
            model=f"up-{kind}", max_tokens=50, messages=[{"role": "user", "content": "Weather?"}], tools=[tool]
        )
    [use] = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "weather" and isinstance(use.input, dict) and isinstance(use.input["city"], str)
    if kind == "openai":
        assert sent(rig, kind)["tools"][0]["function"]["strict"] is True
    elif kind == "anthropic":
        assert sent(rig, kind)["tools"][0]["strict"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_json_mode_to_anthropic_is_answered_through_the_forced_tool(rig: Rig, stream: bool) -> None:
    rig.fakes["anthropic"].reply = Reply(
        text="", tool_calls=[ToolCallSpec("toolu_j", JSON_TOOL, {"city": "Paris", "days": 3})], finish="tool_calls"
    )
    messages: Any = [{"role": "user", "content": "Forecast as JSON"}]
    with rig.openai() as client:
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="up-anthropic", messages=messages, response_format={"type": "json_object"}, stream=True
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        else:
            completion = client.chat.completions.create(
                model="up-anthropic", messages=messages, response_format={"type": "json_object"}
            )
            text = completion.choices[0].message.content or ""
            finish = [completion.choices[0].finish_reason]
            assert completion.choices[0].message.tool_calls is None
    assert json.loads(text) == {"city": "Paris", "days": 3} and finish == ["stop"]
    body = sent(rig, "anthropic")
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL} and body["tools"][0]["name"] == JSON_TOOL


@pytest.mark.parametrize("kind", ["openai", "anthropic", "mock"])
def test_ollama_format_schema_reaches_other_upstreams_natively(rig: Rig, kind: str) -> None:
    with rig.ollama() as client:
        answer = client.chat(
            model=f"up-{kind}",
            messages=[{"role": "user", "content": "Forecast"}],
            format=Forecast.model_json_schema(),
            stream=False,
        )
    Forecast.model_validate_json(answer.message.content or "")
    assert_native_schema(rig, kind, strict=None)
