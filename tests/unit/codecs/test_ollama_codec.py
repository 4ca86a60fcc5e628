"""The Ollama codec: options, tool-call correlation, NDJSON line order, and round trips of shared fields."""

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
    Usage,
    UsageUpdate,
)
from sluice.codecs.framing import NDJSONParser
from sluice.codecs.ollama.request import (
    decode_chat_request,
    decode_embed_request,
    decode_generate_request,
    encode_chat_request,
    encode_generate_request,
)
from sluice.codecs.ollama.response import Timings, decode_chat_response, encode_chat_response
from sluice.codecs.ollama.stream import LineEncoder, NDJSONDecoder
from sluice.errors import InvalidRequest, UpstreamError

text = st.text(min_size=1, max_size=30)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
int64 = st.integers(-(2**63), 2**63 - 1)
args = st.dictionaries(ident, int64 | st.text(max_size=8), max_size=3)


def parsed(messages: list[Message]) -> list[Any]:
    return [
        (
            m.role,
            m.text(),
            [(c.name, json.loads(c.arguments)) for c in m.tool_calls],
            m.reasoning,
            [p.data for p in m.content if isinstance(p, ImagePart)],
        )
        for m in messages
    ]


@st.composite
def requests(draw: st.DrawFn) -> ChatRequest:
    messages = [Message("system", [TextPart(draw(text))])] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 3))):
        parts: list[Any] = [TextPart(draw(text))]
        if draw(st.booleans()):
            parts.append(ImagePart(data="iVBORw0KGgo=", media_type="image/png"))
        messages.append(Message("user", parts))
        names = draw(st.lists(ident, max_size=2, unique=True))
        calls = [ToolCall(f"call_{turn}_{i}", n, json.dumps(draw(args))) for i, n in enumerate(names)]
        messages.append(Message("assistant", [TextPart(draw(text))], tool_calls=calls))
        for call in calls:
            messages.append(Message("tool", [TextPart(draw(text))], tool_call_id=call.id, name=call.name))
    return ChatRequest(
        model=draw(ident),
        messages=messages,
        max_tokens=draw(st.none() | st.integers(1, 4096)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 100)),
        seed=draw(st.none() | st.integers(0, 2**31)),
        stop=draw(st.lists(text, max_size=3)),
        tools=draw(st.lists(st.builds(Tool, name=ident, description=text), max_size=2)),
        presence_penalty=draw(st.none() | st.floats(-2, 2)),
        frequency_penalty=draw(st.none() | st.floats(-2, 2)),
        response_format=draw(
            st.none()
            | st.sampled_from([ResponseFormat("json_object")])
            | st.builds(
                ResponseFormat,
                type=st.just("json_schema"),
                schema=st.fixed_dictionaries({"type": st.just("object")}),
                name=st.just("response"),
            )
        ),
        think=draw(st.none() | st.sampled_from([True, "low", "high"])),
    )


@given(requests(), st.booleans())
def test_request_round_trip_keeps_shared_fields(req: ChatRequest, stream: bool) -> None:
    wire = orjson.loads(orjson.dumps(encode_chat_request(req, req.model, stream)))
    back = decode_chat_request(wire)
    assert parsed(back.messages) == parsed(req.messages)
    # Tool results find their call again by name, though Ollama carries no ids.
    ids = {c.id: c for m in back.messages for c in m.tool_calls}
    for message in back.messages:
        if message.role == "tool":
            assert ids[message.tool_call_id or ""].name == message.name
    shared = ("model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "response_format", "think")
    for name in (*shared, "presence_penalty", "frequency_penalty"):
        assert getattr(back, name) == getattr(req, name), name
    assert back.stream == stream
    assert [(t.name, t.description, t.parameters) for t in back.tools] == [
        (t.name, t.description, t.parameters) for t in req.tools
    ]


@given(text, st.lists(st.tuples(ident, args), max_size=2), st.integers(0, 10**6), st.integers(0, 10**6))
def test_response_round_trip(
    answer: str, calls: list[tuple[str, dict[str, Any]]], prompt: int, completion: int
) -> None:
    message = Message(
        "assistant",
        [TextPart(answer)],
        tool_calls=[ToolCall(f"call_{i}", n, json.dumps(a)) for i, (n, a) in enumerate(calls)],
    )
    resp = ChatResponse("", "m", 0, [Choice(0, message, "tool_calls" if calls else "stop")], Usage(prompt, completion))
    back = decode_chat_response(orjson.loads(orjson.dumps(encode_chat_response(resp, "m", Timings()))))
    assert parsed([back.choices[0].message]) == parsed([message])
    assert back.choices[0].finish_reason == resp.choices[0].finish_reason
    assert back.usage == resp.usage


def test_golden_line_sequence_for_text_then_a_tool_call() -> None:
    encoder = LineEncoder("llama")
    events: list[Any] = [
        StreamStart("x", "llama", 0),
        TextDelta("Checking "),
        TextDelta("now."),
        ToolCallDelta(0, "", "call_1", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        Finish("tool_calls"),
        UsageUpdate(Usage(12, 7)),
    ]
    wire = b"".join(encoder.encode(e) for e in events) + encoder.close(Timings(total=5, eval=3))
    lines = [json.loads(line) for line in wire.splitlines()]
    assert [line["message"]["content"] for line in lines[:2]] == ["Checking ", "now."]
    assert lines[2]["message"]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    final = lines[3]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert (final["prompt_eval_count"], final["eval_count"], final["total_duration"]) == (12, 7, 5)
    assert [line["done"] for line in lines] == [False, False, False, True]


def test_decoder_one_byte_fragments_and_truncation() -> None:
    encoder = LineEncoder("llama", "generate")
    wire = encoder.encode(TextDelta("hel")) + encoder.encode(TextDelta("lo")) + encoder.close(Timings())
    parser, decoder = NDJSONParser(), NDJSONDecoder()
    events = [e for i in range(len(wire)) for line in parser.feed(wire[i : i + 1]) for e in decoder.decode(line)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hello"
    assert decoder.complete
    with pytest.raises(UpstreamError, match="broken"):
        NDJSONDecoder().decode(b'{"error": "model broken"}')


# --- mapping rules ----------------------------------------------------------------------------------------------


def test_stream_is_on_unless_turned_off() -> None:
    assert decode_chat_request({"model": "m", "messages": []}).stream is True
    assert decode_chat_request({"model": "m", "messages": [], "stream": False}).stream is False


def test_options_map_and_the_rest_stay_native() -> None:
    req = decode_chat_request(
        {
            "model": "m",
            "messages": [],
            "keep_alive": "5m",
            "options": {"num_predict": 64, "temperature": 0.2, "num_ctx": 8192, "mirostat": 2},
        }
    )
    assert (req.max_tokens, req.temperature) == (64, 0.2)
    assert req.native == {"ollama": {"keep_alive": "5m", "options": {"num_ctx": 8192, "mirostat": 2}}}
    body = encode_chat_request(req, "llama", True)
    assert body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.2, "num_predict": 64, "num_ctx": 8192, "mirostat": 2}


def test_format_json_and_schema() -> None:
    assert decode_chat_request({"model": "m", "messages": [], "format": "json"}).response_format == ResponseFormat(
        "json_object"
    )
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = decode_chat_request({"model": "m", "messages": [], "format": schema})
    assert encode_chat_request(req, "m", False)["format"] == schema


def test_generate_keeps_the_prompt_and_system() -> None:
    req = decode_generate_request({"model": "m", "prompt": "Once", "system": "be poetic", "raw": True})
    assert req.prompt == "Once" and req.system_text() == "be poetic" and req.stream is True
    body = encode_generate_request(req, "m", False)
    assert (body["prompt"], body["system"], body["raw"]) == ("Once", "be poetic", True)


def test_embed_input_forms() -> None:
    assert decode_embed_request({"model": "m", "input": "a"}, legacy=False).inputs == ["a"]
    assert decode_embed_request({"model": "m", "prompt": "a"}, legacy=True).inputs == ["a"]
    with pytest.raises(InvalidRequest):
        decode_embed_request({"model": "m", "input": []}, legacy=False)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [], "options": {"temperature": "hot"}}, "options.temperature"),
        ({"model": "m", "messages": [], "format": 5}, "format"),
        ({"model": "m", "messages": [], "think": "maybe"}, "think"),
    ],
)
def test_invalid_fields_name_their_path(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_request(body)
    assert caught.value.param == param
