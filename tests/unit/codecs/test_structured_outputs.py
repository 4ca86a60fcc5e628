"""Structured outputs across formats: JSON schemas and strict tools in each format's native form, and Anthropic's
forced-tool-call fallback for plain JSON mode."""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import ChatRequest, Message, ResponseFormat, TextDelta, TextPart, Tool, ToolCallDelta, ToolChoice
from sluice.codecs.anthropic.request import decode_messages_request, encode_messages_request
from sluice.codecs.anthropic.response import decode_message_response
from sluice.codecs.anthropic.stream import MessageEventDecoder
from sluice.codecs.anthropic.structured import JSON_TOOL, closed_objects
from sluice.codecs.ollama.request import decode_chat_request as decode_ollama
from sluice.codecs.ollama.request import encode_chat_request as encode_ollama
from sluice.codecs.openai.chat_request import decode_chat_request, encode_chat_request

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CLOSED = {**SCHEMA, "additionalProperties": False}


def ask(**fields: Any) -> ChatRequest:
    return ChatRequest("m", [Message("user", [TextPart("Weather?")])], **fields)


def anthropic_client(**extra: Any) -> ChatRequest:
    return decode_messages_request(
        {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "Weather?"}], **extra}
    )


def test_anthropic_output_config_and_the_beta_output_format_decode_to_a_strict_json_schema() -> None:
    fmt = {"type": "json_schema", "schema": CLOSED}
    for req in (anthropic_client(output_config={"format": fmt}), anthropic_client(output_format=fmt)):
        assert req.response_format == ResponseFormat("json_schema", CLOSED, None, True)
        assert "output_config" not in req.native.get("anthropic", {})
    effort = anthropic_client(output_config={"format": fmt, "effort": "low"})
    assert effort.native == {"anthropic": {"output_config": {"effort": "low"}}}


def test_a_json_schema_reaches_each_upstream_in_its_native_form() -> None:
    openai_req = decode_chat_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "Weather?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA, "strict": True}},
        }
    )
    to_anthropic = encode_messages_request(openai_req, "claude", False, 100)
    assert to_anthropic["output_config"] == {"format": {"type": "json_schema", "schema": CLOSED}}
    assert "tools" not in to_anthropic
    assert encode_ollama(openai_req, "llama", False)["format"] == SCHEMA
    from_anthropic = encode_chat_request(
        anthropic_client(output_config={"format": {"type": "json_schema", "schema": CLOSED}}), "gpt", False
    )
    assert from_anthropic["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": CLOSED, "strict": True},
    }
    from_ollama = encode_chat_request(
        decode_ollama({"model": "m", "messages": [{"role": "user", "content": "x"}], "format": SCHEMA}), "gpt", False
    )
    assert from_ollama["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }
    effort_kept = encode_messages_request(
        anthropic_client(output_config={"format": {"type": "json_schema", "schema": CLOSED}, "effort": "low"}),
        "claude",
        False,
        100,
    )
    assert effort_kept["output_config"] == {"effort": "low", "format": {"type": "json_schema", "schema": CLOSED}}


def test_strict_tools_are_native_on_anthropic_and_openai() -> None:
    tool = Tool("weather", "Look it up", SCHEMA, strict=True)
    body = encode_messages_request(ask(tools=[tool]), "claude", False, 100)
    assert body["tools"] == [{"name": "weather", "description": "Look it up", "input_schema": CLOSED, "strict": True}]
    back = anthropic_client(tools=[{"name": "weather", "input_schema": CLOSED, "strict": True}])
    assert back.tools[0].strict is True
    assert encode_chat_request(back, "gpt", False)["tools"][0]["function"]["strict"] is True


def test_json_mode_to_anthropic_is_a_forced_call_of_the_json_tool() -> None:
    body = encode_messages_request(ask(response_format=ResponseFormat("json_object")), "claude", False, 100)
    assert [t["name"] for t in body["tools"]] == [JSON_TOOL]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    with_tools = encode_messages_request(
        ask(response_format=ResponseFormat("json_object"), tools=[Tool("weather")]), "claude", False, 100
    )
    assert [t["name"] for t in with_tools["tools"]] == ["weather", JSON_TOOL]
    assert with_tools["tool_choice"] == {"type": "any"}
    forced = encode_messages_request(
        ask(
            response_format=ResponseFormat("json_object"),
            tools=[Tool("weather")],
            tool_choice=ToolChoice("tool", "weather"),
        ),
        "claude",
        False,
        100,
    )
    assert [t["name"] for t in forced["tools"]] == ["weather"]


def test_the_json_tool_call_comes_back_as_the_answer_text() -> None:
    body = {
        "id": "msg_1",
        "model": "claude",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"answer": 42}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    resp = decode_message_response(body, JSON_TOOL)
    assert orjson.loads(resp.choices[0].message.text()) == {"answer": 42}
    assert resp.choices[0].message.tool_calls == [] and resp.choices[0].finish_reason == "stop"
    as_a_call = decode_message_response(body)  # without the fallback it is an ordinary tool call
    assert as_a_call.choices[0].finish_reason == "tool_calls" and as_a_call.choices[0].message.tool_calls


def test_a_streamed_json_tool_call_is_streamed_text() -> None:
    decoder = MessageEventDecoder(JSON_TOOL)
    frames = [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": JSON_TOOL},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    events = [e for frame in frames for e in decoder.decode(None, orjson.dumps(frame))]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"a": 1}'
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert [e.reason for e in events if type(e).__name__ == "Finish"] == ["stop"]


def test_closing_objects_leaves_values_and_explicit_choices_alone() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "x": {"const": {"a": 1}},
        },
        "$defs": {"Inner": {"type": "object", "properties": {"y": {"type": "integer"}}}},
    }
    closed = closed_objects(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["tags"]["additionalProperties"] == {"type": "string"}
    assert closed["properties"]["x"] == {"const": {"a": 1}}
    assert closed["$defs"]["Inner"]["additionalProperties"] is False
