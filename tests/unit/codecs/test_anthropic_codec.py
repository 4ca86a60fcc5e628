"""The Anthropic codec: mapping rules, the exact stream event order, and round trips that keep shared fields."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    Finish,
    ImagePart,
    Message,
    ResponseFormat,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from sluice.codecs.anthropic.errors import error_body, error_status
from sluice.codecs.anthropic.request import THINKING_BUDGETS, decode_messages_request, encode_messages_request
from sluice.codecs.anthropic.response import decode_message_response, encode_message_response
from sluice.codecs.anthropic.stream import MessageEventDecoder, MessageEventEncoder
from sluice.codecs.framing import SSEParser
from sluice.errors import InvalidRequest, Overloaded, RateLimited

text = st.text(min_size=1, max_size=30)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
# 64-bit integers: beyond that JSON parsers (orjson included) fall back to floats, and no tool takes such numbers.
int64 = st.integers(-(2**63), 2**63 - 1)
json_args = st.dictionaries(ident, int64 | st.text(max_size=8), max_size=3).map(
    lambda d: json.dumps(d, separators=(",", ":"))
)
calls = st.lists(st.builds(ToolCall, id=ident.map(lambda s: "toolu_" + s), name=ident, arguments=json_args), max_size=2)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    out = [Message("system", [TextPart(draw(text))])] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        parts: list[Any] = [TextPart(draw(text))]
        if draw(st.booleans()):
            parts.append(ImagePart(data="iVBORw0KGgo=", media_type="image/png"))
        out.append(Message("user", parts))
        tool_calls = draw(calls)
        out.append(Message("assistant", [TextPart(draw(text))], tool_calls=tool_calls))
        for call in tool_calls:
            out.append(Message("tool", [TextPart(draw(text))], tool_call_id=call.id, is_error=draw(st.booleans())))
    return out


requests = st.builds(
    ChatRequest,
    model=ident,
    messages=conversations(),
    max_tokens=st.integers(1, 4096),
    temperature=st.none() | st.floats(0, 1),
    top_p=st.none() | st.floats(0, 1),
    top_k=st.none() | st.integers(1, 100),
    stop=st.lists(text, max_size=3),
    tools=st.lists(st.builds(Tool, name=ident, description=st.none() | text), max_size=2),
    tool_choice=st.none() | st.sampled_from([ToolChoice("auto"), ToolChoice("required"), ToolChoice("none")]),
    user=st.none() | ident,
    think=st.none() | st.sampled_from(["low", "medium", "high"]),
)


def normalised(messages: list[Message]) -> list[Any]:
    return [
        (
            m.role,
            m.content,
            [(c.id, c.name, json.loads(c.arguments)) for c in m.tool_calls],
            m.tool_call_id,
            m.is_error,
            m.text(),
        )
        for m in messages
        if m.role != "system"
    ]


@given(requests)
def test_request_round_trip_keeps_shared_fields(req: ChatRequest) -> None:
    wire = orjson.loads(orjson.dumps(encode_messages_request(req, req.model, False, 4096)))
    back = decode_messages_request(wire)
    system = "\n\n".join(m.text() for m in req.messages if m.role == "system")
    assert back.system_text() == system
    # Anthropic carries tool arguments as objects, so their JSON text may be re-serialised: compare it parsed.
    assert normalised(back.messages) == normalised(req.messages)
    for name in ("model", "temperature", "top_p", "top_k", "stop", "user", "think"):
        assert getattr(back, name) == getattr(req, name), name
    # Thinking needs room for its budget: max_tokens grows to exceed it, and is kept otherwise.
    budget = THINKING_BUDGETS[req.think] if isinstance(req.think, str) else 0
    assert back.max_tokens == max(req.max_tokens or 0, budget + 1 if budget else 0)
    assert [(t.name, t.description, t.parameters) for t in back.tools] == [
        (t.name, t.description, t.parameters) for t in req.tools
    ]
    if req.tools:
        assert back.tool_choice == req.tool_choice


responses = st.builds(
    ChatResponse,
    id=ident,
    model=ident,
    created=st.just(0),
    choices=st.lists(
        st.builds(
            Choice,
            index=st.just(0),
            message=st.builds(
                Message,
                role=st.just("assistant"),
                content=st.lists(st.builds(TextPart, text), min_size=1, max_size=1),
                tool_calls=calls,
            ),
            finish_reason=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
        ),
        min_size=1,
        max_size=1,
    ),
    usage=st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.just(0)),
)


@given(responses)
def test_response_round_trip(resp: ChatResponse) -> None:
    body = orjson.loads(orjson.dumps(encode_message_response(resp, resp.id, resp.model)))
    back = decode_message_response(body)
    assert normalised([c.message for c in back.choices]) == normalised([c.message for c in resp.choices])
    assert [c.finish_reason for c in back.choices] == [c.finish_reason for c in resp.choices]
    assert (back.id, back.model, back.usage) == (resp.id, resp.model, resp.usage)


@given(responses, st.integers(1, 6))
def test_stream_round_trip_after_merging_fragments(resp: ChatResponse, piece: int) -> None:
    choice = resp.choices[0]
    full = choice.message.text()
    events: list[Any] = [StreamStart(resp.id, resp.model, 0)]
    events += [TextDelta(full[i : i + piece]) for i in range(0, len(full), piece)]
    for index, call in enumerate(choice.message.tool_calls):
        events.append(ToolCallDelta(index, "", call.id, call.name))
        events += [ToolCallDelta(index, call.arguments[i : i + piece]) for i in range(0, len(call.arguments), piece)]
    assert choice.finish_reason is not None
    events += [Finish(choice.finish_reason), UsageUpdate(resp.usage or Usage())]
    encoder = MessageEventEncoder(resp.id, resp.model)
    wire = b"".join(encoder.encode(e) for e in events) + encoder.close()
    decoder = MessageEventDecoder()
    decoded = [e for sse in SSEParser().feed(wire) for e in decoder.decode(sse.event, sse.data)]
    assert decoder.complete
    assert "".join(e.text for e in decoded if isinstance(e, TextDelta)) == full
    merged: dict[int, ToolCall] = {}
    for e in decoded:
        if isinstance(e, ToolCallDelta):
            if e.id is not None:
                merged[e.index] = ToolCall(e.id, e.name or "", "")
            merged[e.index].arguments += e.arguments
    assert [(c.id, c.name, json.loads(c.arguments or "{}")) for c in merged.values()] == [
        (c.id, c.name, json.loads(c.arguments)) for c in choice.message.tool_calls
    ]
    assert [e.reason for e in decoded if isinstance(e, Finish)] == [choice.finish_reason]
    final_usage = [e.usage for e in decoded if isinstance(e, UsageUpdate)][-1]
    assert final_usage == resp.usage


def test_golden_event_order_for_text_then_tool_use() -> None:
    encoder = MessageEventEncoder("msg_1", "claude", input_tokens=12)
    events: list[Any] = [
        StreamStart("msg_1", "claude", 0),
        TextDelta("Let me check. "),
        ToolCallDelta(0, "", "toolu_1", "get_weather"),
        ToolCallDelta(0, '{"city": '),
        ToolCallDelta(0, '"Paris"}'),
        Finish("tool_calls"),
        UsageUpdate(Usage(12, 20)),
    ]
    wire = b"".join(encoder.encode(e) for e in events) + encoder.close()
    order = [(sse.event, json.loads(sse.data).get("index")) for sse in SSEParser().feed(wire)]
    assert order == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    final = next(json.loads(sse.data) for sse in SSEParser().feed(wire) if sse.event == "message_delta")
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {
        "input_tokens": 12,
        "output_tokens": 20,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_decoder_survives_one_byte_fragments_and_reports_in_band_errors() -> None:
    encoder = MessageEventEncoder("msg_1", "claude")
    wire = (
        encoder.encode(TextDelta("hello"))
        + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )
    parser, decoder = SSEParser(), MessageEventDecoder()
    seen: list[Any] = []
    with pytest.raises(Exception, match="busy"):
        for i in range(len(wire)):
            for sse in parser.feed(wire[i : i + 1]):
                seen.extend(decoder.decode(sse.event, sse.data))
    assert any(isinstance(e, TextDelta) and e.text == "hello" for e in seen)


# --- mapping rules ----------------------------------------------------------------------------------------------


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_tool_results_become_tool_messages_before_the_users_text() -> None:
    content = [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "content": [{"type": "text", "text": "err"}],
            "is_error": True,
        },
        {"type": "text", "text": "and now?"},
    ]
    req = decode_messages_request(base(messages=[{"role": "user", "content": content}]))
    assert [(m.role, m.tool_call_id, m.is_error, m.text()) for m in req.messages] == [
        ("tool", "toolu_1", False, "21 C"),
        ("tool", "toolu_2", True, "err"),
        ("user", None, False, "and now?"),
    ]


def test_encoding_merges_tool_results_into_one_user_turn() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("weather?")]),
            Message("assistant", [], tool_calls=[ToolCall("t1", "w", "{}"), ToolCall("t2", "w", "{}")]),
            Message("tool", [TextPart("a")], tool_call_id="t1"),
            Message("tool", [TextPart("b")], tool_call_id="t2"),
            Message("user", [TextPart("thanks")]),
        ],
    )
    body = encode_messages_request(req, "claude", False, 1000)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "tool_result", "text"]


def test_system_blocks_and_thinking_budget() -> None:
    req = decode_messages_request(
        base(
            system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            thinking={"type": "enabled", "budget_tokens": 3000},
        )
    )
    assert req.system_text() == "AB" and req.think == "medium"


def test_zero_penalties_and_text_format_are_no_ops() -> None:
    req = ChatRequest(
        model="m",
        messages=[Message("user", [TextPart("hi")])],
        presence_penalty=0.0,
        response_format=ResponseFormat("text"),
    )
    assert "presence_penalty" not in encode_messages_request(req, "claude", False, 1000)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "c", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (base(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (
            base(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]),
            "messages[0].content[0].source.data",
        ),
        (base(tools=[{"name": "t"}]), "tools[0].input_schema"),
        (base(tool_choice={"type": "maybe"}), "tool_choice.type"),
        (base(temperature=1.5), "temperature"),
    ],
)
def test_invalid_fields_name_their_path(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_messages_request(body)
    assert caught.value.param == param


def test_errors_use_anthropic_types_and_statuses() -> None:
    assert error_body(RateLimited("slow down")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert error_status(Overloaded("busy")) == 529
