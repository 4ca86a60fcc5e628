"""The Responses API codec: requests to the canonical model, answers to Response objects and typed stream events,
every object held to OpenAI's published schemas."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluice.canonical import (
    Finish,
    Message,
    ReasoningDelta,
    ResponseFormat,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from sluice.codecs.framing import SSEParser
from sluice.codecs.openai.responses_object import ResponseEnvelope, input_item_resources, output_items
from sluice.codecs.openai.responses_request import decode_responses_request, input_items_of
from sluice.codecs.openai.responses_stream import ResponseEventEncoder
from sluice.errors import InvalidRequest, Unsupported, UpstreamError
from tests.support.openapi import spec_available, validate

needs_spec = pytest.mark.skipif(not spec_available(), reason="OpenAI's OpenAPI spec is not in ../shared/specs")
TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}, "strict": False}


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "input": "Weather in Paris?", **extra}


def test_a_string_input_with_instructions_is_a_system_and_a_user_message() -> None:
    req = decode_responses_request(body(instructions="Be brief.", max_output_tokens=64, temperature=0.2))
    assert [(m.role, m.text()) for m in req.messages] == [("system", "Be brief."), ("user", "Weather in Paris?")]
    assert (req.max_tokens, req.temperature, req.stream) == (64, 0.2, False)


def test_items_fold_into_canonical_turns() -> None:
    items = [
        {"type": "message", "role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "hmm"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
        {"role": "user", "content": "Thanks"},
    ]
    req = decode_responses_request(body(input=items, tools=[TOOL], tool_choice={"type": "function", "name": "weather"}))
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert req.messages[2].tool_calls == [ToolCall("call_1", "weather", '{"city":"Paris"}')]
    assert req.messages[2].reasoning == "hmm"
    assert req.messages[3].tool_call_id == "call_1" and req.messages[3].text() == "sunny"
    assert req.tool_choice == ToolChoice("tool", "weather")
    assert req.tools[0].name == "weather" and req.tools[0].strict is False


def test_history_from_a_previous_response_comes_first() -> None:
    history = [
        {"type": "message", "role": "user", "content": "Hi"},
        *output_items(ENVELOPE, Message("assistant", [TextPart("Hello")]), "stop"),
    ]
    req = decode_responses_request(body(input="And now?"), history)
    assert [(m.role, m.text()) for m in req.messages] == [("user", "Hi"), ("assistant", "Hello"), ("user", "And now?")]


def test_text_format_and_reasoning_effort() -> None:
    fmt = {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
    req = decode_responses_request(body(text={"format": fmt}, reasoning={"effort": "high"}))
    assert req.response_format == ResponseFormat("json_schema", {"type": "object"}, "w", True)
    assert req.think == "high"
    assert decode_responses_request(body(text={"format": {"type": "json_object"}})).response_format == ResponseFormat(
        "json_object"
    )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [TOOL, {"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[1].type"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
    ],
)
def test_what_a_translation_cannot_reproduce_is_refused_naming_it(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(Unsupported) as caught:
        decode_responses_request(body(**extra))
    assert caught.value.param == param and param in caught.value.message


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_responses_request(body(max_output_tokens=3))
    assert caught.value.param == "max_output_tokens"
    with pytest.raises(InvalidRequest) as missing:
        decode_responses_request({"model": "m"})
    assert missing.value.param == "input"


ENVELOPE = ResponseEnvelope("resp_abc", "gpt-x", 1_700_000_000, {"model": "m", "tools": [TOOL], "metadata": {"k": "v"}})


@needs_spec
@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Message("assistant", [TextPart("Sunny.")], reasoning="Let me think."), "stop"),
        (
            Message("assistant", tool_calls=[ToolCall("call_1", "weather", "{}"), ToolCall("call_2", "weather", "{}")]),
            "tool_calls",
        ),
        (Message("assistant", [TextPart("Cut")]), "length"),
    ],
)
def test_a_complete_answer_is_a_valid_response(message: Message, reason: Any) -> None:
    from sluice.codecs.openai.responses_object import status_for

    items = output_items(ENVELOPE, message, reason)
    response = ENVELOPE.render(items, status_for(reason), Usage(10, 5, 2), reason)
    validate("Response", response)
    assert response["metadata"] == {"k": "v"} and response["tools"][0]["name"] == "weather"
    if reason == "length":
        assert response["status"] == "incomplete" and response["incomplete_details"] == {"reason": "max_output_tokens"}
    if reason == "tool_calls":
        assert [i["call_id"] for i in items] == ["call_1", "call_2"] and len({i["id"] for i in items}) == 2


@needs_spec
def test_input_items_are_listed_as_item_resources() -> None:
    items = input_items_of(
        body(
            input=[
                {"role": "user", "content": "Hi"},
                {"type": "function_call", "call_id": "c", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "ok"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
            ]
        )
    )
    listed = input_item_resources(items, ENVELOPE)
    validate(
        "ResponseItemList",
        {"object": "list", "data": listed, "has_more": False, "first_id": listed[0]["id"], "last_id": listed[-1]["id"]},
    )


def validate_event(event: dict[str, Any]) -> None:
    """Against the event's own schema (the union's error names no branch), then the union."""
    name = "Response" + "".join(p.title() for p in event["type"].removeprefix("response.").replace(".", "_").split("_"))
    schemas = {"error": "ResponseErrorEvent", "response.output_text.delta": "ResponseTextDeltaEvent"}
    schemas["response.output_text.done"] = "ResponseTextDoneEvent"
    validate(schemas.get(event["type"], name + "Event"), event)
    validate("ResponseStreamEvent", event)


def stream(events: list[StreamEvent], fail: bool = False) -> tuple[ResponseEventEncoder, list[dict[str, Any]]]:
    encoder = ResponseEventEncoder(ENVELOPE)
    raw = b"".join(encoder.encode(e) for e in events)
    raw += encoder.fail(UpstreamError("the upstream broke")) if fail else encoder.close()
    frames = SSEParser().feed(raw)
    parsed = [orjson.loads(frame.data) for frame in frames]
    assert [frame.event for frame in frames] == [p["type"] for p in parsed]
    return encoder, parsed


EVENTS: list[StreamEvent] = [
    ReasoningDelta("Let "),
    ReasoningDelta("me think."),
    TextDelta("Sun"),
    TextDelta("ny."),
    ToolCallDelta(0, "", "call_1", "weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"Paris"}'),
    Finish("tool_calls"),
    UsageUpdate(Usage(10, 7)),
]


@needs_spec
def test_every_stream_event_is_valid_and_numbered_in_order() -> None:
    encoder, events = stream(EVENTS)
    for event in events:
        validate_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 3
    final = events[-1]["response"]
    assert final == encoder.final and final["usage"]["output_tokens"] == 7
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "Sunny."
    assert final["output"][2]["arguments"] == '{"city":"Paris"}' and final["output"][2]["call_id"] == "call_1"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Sunny."


@needs_spec
def test_a_failed_stream_ends_with_an_error_event_and_response_failed() -> None:
    _, events = stream([TextDelta("Half")], fail=True)
    for event in events:
        validate_event(event)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == "Half"


@needs_spec
def test_an_empty_answer_still_has_one_message() -> None:
    _, events = stream([Finish("length")])
    for event in events:
        validate_event(event)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["output"][0]["type"] == "message"


def test_verbosity_reaches_chat_upstreams_as_their_own_field_and_is_refused_elsewhere() -> None:
    from sluice.codecs.expressible import ANTHROPIC, OPENAI, check_expressible
    from sluice.codecs.openai.chat_request import encode_chat_request

    req = decode_responses_request(body(text={"verbosity": "low"}, top_logprobs=0))
    assert encode_chat_request(req, "gpt", False)["verbosity"] == "low"
    check_expressible(req, OPENAI, drop=False)
    with pytest.raises(Unsupported) as caught:
        check_expressible(req, ANTHROPIC, drop=False)
    assert caught.value.param == "text.verbosity"
    assert "verbosity" not in decode_responses_request(body(text={"verbosity": "medium"})).native.get("openai", {})
