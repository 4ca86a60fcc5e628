"""The OpenAI codec: table tests of the mapping rules and round trips that keep every shared field."""

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
from sluice.codecs.framing import SSEParser
from sluice.codecs.openai.chat_request import decode_chat_request, encode_chat_request
from sluice.codecs.openai.responses import decode_chat_response, encode_chat_response
from sluice.codecs.openai.stream import ChatChunkDecoder, ChatChunkEncoder
from sluice.errors import InvalidRequest, Unsupported

text = st.text(min_size=1, max_size=30)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
json_args = st.dictionaries(ident, st.integers() | st.text(max_size=8), max_size=3).map(
    lambda d: json.dumps(d, separators=(",", ":"))
)
tool_calls = st.lists(st.builds(ToolCall, id=ident.map(lambda s: "call_" + s), name=ident, arguments=json_args),
                      max_size=2)  # fmt: skip
images = st.one_of(
    st.builds(ImagePart, url=st.just("https://example.com/cat.png")),
    st.builds(ImagePart, data=st.just("iVBORw0KGgo="), media_type=st.just("image/png")),
)


@st.composite
def messages(draw: st.DrawFn) -> list[Message]:
    out = [Message("system", [TextPart(draw(text))])] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 4))):
        parts: list[Any] = [TextPart(draw(text))]
        if draw(st.booleans()):
            parts.append(draw(images))
        out.append(Message("user", parts))
        calls = draw(tool_calls)
        content = [] if calls and draw(st.booleans()) else [TextPart(draw(text))]
        out.append(Message("assistant", content, tool_calls=calls))
        for call in calls:
            out.append(Message("tool", [TextPart(draw(text))], tool_call_id=call.id))
    return out


requests = st.builds(
    ChatRequest,
    model=ident,
    messages=messages(),
    max_tokens=st.none() | st.integers(1, 4096),
    temperature=st.none() | st.floats(0, 2),
    top_p=st.none() | st.floats(0, 1),
    stop=st.lists(text, max_size=3),
    n=st.integers(1, 3),
    seed=st.none() | st.integers(0, 2**31),
    tools=st.lists(st.builds(Tool, name=ident, description=st.none() | text), max_size=2),
    tool_choice=st.none() | st.sampled_from([ToolChoice("auto"), ToolChoice("required"), ToolChoice("none")]),
    response_format=st.none()
    | st.sampled_from([ResponseFormat("json_object"), ResponseFormat("text")])
    | st.builds(
        ResponseFormat,
        type=st.just("json_schema"),
        schema=st.dictionaries(ident, st.just("string"), max_size=2),
        name=ident,
        strict=st.none() | st.booleans(),
    ),
    logprobs=st.none() | st.booleans(),
    top_logprobs=st.none() | st.integers(0, 20),
    presence_penalty=st.none() | st.floats(-2, 2),
    frequency_penalty=st.none() | st.floats(-2, 2),
    think=st.none() | st.sampled_from(["low", "medium", "high"]),
    user=st.none() | ident,
)


@given(requests)
def test_request_round_trip_keeps_shared_fields(req: ChatRequest) -> None:
    wire = orjson.loads(orjson.dumps(encode_chat_request(req, req.model, stream=False)))
    back = decode_chat_request(wire)
    assert back.messages == req.messages
    shared = ("model", "max_tokens", "temperature", "top_p", "stop", "n", "seed", "response_format", "user")
    for name in (*shared, "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "think"):
        assert getattr(back, name) == getattr(req, name), name
    assert back.tools == [Tool(t.name, t.description, t.parameters, t.strict) for t in req.tools]
    if req.tool_choice is not None and (req.tools or req.tool_choice.mode == "none"):
        assert back.tool_choice == req.tool_choice


responses = st.builds(
    ChatResponse,
    id=ident,
    model=ident,
    created=st.integers(0, 2**31),
    choices=st.lists(
        st.builds(
            Choice,
            index=st.just(0),
            message=st.builds(
                Message,
                role=st.just("assistant"),
                content=st.lists(st.builds(TextPart, text), min_size=1, max_size=1),
                tool_calls=tool_calls,
            ),
            finish_reason=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
        ),
        min_size=1,
        max_size=1,
    ),
    usage=st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 1000)),
)


@given(responses)
def test_response_round_trip(resp: ChatResponse) -> None:
    back = decode_chat_response(orjson.loads(orjson.dumps(encode_chat_response(resp))))
    assert back == resp


@given(responses, st.integers(1, 7))
def test_stream_round_trip_after_merging_fragments(resp: ChatResponse, piece: int) -> None:
    choice = resp.choices[0]
    full = choice.message.text()
    events: list[Any] = [StreamStart(resp.id, resp.model, resp.created)]
    events += [TextDelta(full[i : i + piece]) for i in range(0, len(full), piece)]
    for index, call in enumerate(choice.message.tool_calls):
        events.append(ToolCallDelta(index, "", call.id, call.name))
        events += [ToolCallDelta(index, call.arguments[i : i + piece]) for i in range(0, len(call.arguments), piece)]
    assert choice.finish_reason is not None
    events += [Finish(choice.finish_reason), UsageUpdate(resp.usage or Usage())]
    encoder = ChatChunkEncoder(resp.id, resp.model, resp.created, include_usage=True)
    wire = b"".join(encoder.encode(e) for e in events) + encoder.close()

    decoder = ChatChunkDecoder()
    decoded = []
    for sse in SSEParser().feed(wire):
        if sse.data != b"[DONE]":
            decoded.extend(decoder.decode(sse.data))
    assert "".join(e.text for e in decoded if isinstance(e, TextDelta)) == full
    calls: dict[int, ToolCall] = {}
    for e in decoded:
        if isinstance(e, ToolCallDelta):
            if e.id is not None:
                calls[e.index] = ToolCall(e.id, e.name or "", "")
            calls[e.index].arguments += e.arguments
    assert list(calls.values()) == choice.message.tool_calls
    assert [e.reason for e in decoded if isinstance(e, Finish)] == [choice.finish_reason]
    assert decoder.usage == resp.usage


# --- table tests of decoding rules ------------------------------------------------------------------------------


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_developer_role_is_a_system_message() -> None:
    req = decode_chat_request({"model": "m", "messages": [{"role": "developer", "content": "be brief"}]})
    assert req.messages[0].role == "system"


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert decode_chat_request(base(max_tokens=10, max_completion_tokens=20)).max_tokens == 20


def test_data_url_image_becomes_inline_base64() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
    ]
    req = decode_chat_request({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert req.messages[0].content[1] == ImagePart(data="QUJD", media_type="image/jpeg")


def test_json_schema_response_format() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}}
    req = decode_chat_request(base(response_format=fmt))
    assert req.response_format == ResponseFormat("json_schema", {"type": "object"}, "x", True)
    assert encode_chat_request(req, "m", False)["response_format"] == fmt


def test_specific_tool_choice_and_parallel_flag() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    req = decode_chat_request(
        base(tools=tools, tool_choice={"type": "function", "function": {"name": "f"}}, parallel_tool_calls=False)
    )
    assert req.tool_choice == ToolChoice("tool", "f", parallel=False)


def test_unknown_fields_are_kept_for_openai_upstreams() -> None:
    req = decode_chat_request(base(logit_bias={"50256": -100}, service_tier="auto"))
    body = encode_chat_request(req, "upstream-m", stream=True)
    assert body["logit_bias"] == {"50256": -100} and body["service_tier"] == "auto"
    assert body["model"] == "upstream-m" and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (base(messages=[{"role": "assistant"}]), "messages[0].content"),
        (base(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (base(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages[0].content[0].text"),
        (base(tool_choice="sometimes"), "tool_choice"),
        (base(response_format={"type": "xml"}), "response_format.type"),
        (base(top_logprobs=50), "top_logprobs"),
        (base(stop=[1, 2]), "stop"),
    ],
)
def test_invalid_fields_name_their_path(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_chat_request(body)
    assert caught.value.param == param


def test_unsupported_content_part_is_a_clear_400() -> None:
    content = [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]
    with pytest.raises(Unsupported) as caught:
        decode_chat_request({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert caught.value.status == 400 and "input_audio" in caught.value.message
