"""Wire → canonical → wire: a request (or answer) as a client or upstream sends it, decoded and encoded again, comes
out the same. The strategies draw bodies in each encoder's normal form (the spelling it writes, e.g. ``max_tokens``
rather than ``max_completion_tokens``), so equality is exact: any field a codec forgets or bends fails here."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sluice.codecs.openai.chat_request import decode_chat_request, encode_chat_request
from sluice.codecs.openai.completion_request import (
    decode_completion_request,
    decode_embedding_request,
    encode_completion_request,
    encode_embedding_request,
)
from sluice.codecs.openai.responses import decode_chat_response, encode_chat_response

text = st.text(min_size=1, max_size=20)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
unit = st.floats(0, 1)
penalty = st.floats(-2, 2).filter(bool)  # zero penalties ask for nothing
int64 = st.integers(-(2**63), 2**63 - 1)
arguments = st.dictionaries(ident, int64 | st.text(max_size=8) | st.booleans(), max_size=3)
schema = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(ident, st.just({"type": "string"}), max_size=2)}
)


def json_roundtrip(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def optional(draw: st.DrawFn, body: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        body[key] = draw(strategy)


# --- OpenAI ------------------------------------------------------------------------------------------------------


@st.composite
def openai_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            image = {"url": draw(st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="]))}
            out.append(
                {
                    "role": "user",
                    "content": [{"type": "text", "text": draw(text)}, {"type": "image_url", "image_url": image}],
                }
            )
        else:
            out.append({"role": "user", "content": draw(text)})
        names = draw(st.lists(ident, max_size=2, unique=True))
        calls = [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {"name": n, "arguments": json.dumps(draw(arguments))},
            }
            for i, n in enumerate(names)
        ]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls and draw(st.booleans()) else draw(text),
        }
        if calls:
            assistant["tool_calls"] = calls
        out.append(assistant)
        out += [{"role": "tool", "tool_call_id": c["id"], "content": draw(text)} for c in calls]
    return out


@st.composite
def openai_chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(ident), "messages": draw(openai_messages())}
    for key, strategy in (
        ("max_tokens", st.integers(1, 4096)),
        ("temperature", st.floats(0, 2)),
        ("top_p", unit),
        ("top_k", st.integers(0, 100)),
        ("seed", st.integers(0, 2**31)),
        ("presence_penalty", penalty),
        ("frequency_penalty", penalty),
        ("logprobs", st.booleans()),
        ("top_logprobs", st.integers(0, 20)),
        ("user", ident),
        ("metadata", st.dictionaries(ident, text, max_size=2)),
        ("stop", st.lists(text, min_size=1, max_size=3)),
        ("n", st.integers(2, 4)),
        ("reasoning_effort", st.sampled_from(["minimal", "low", "medium", "high"])),
        (
            "logit_bias",
            st.dictionaries(
                st.from_regex(r"[1-9][0-9]{0,4}", fullmatch=True), st.integers(-100, 100), min_size=1, max_size=2
            ),
        ),
    ):
        optional(draw, body, key, strategy)
    fmt = draw(st.sampled_from(["none", "text", "json_object", "json_schema"]))
    if fmt == "json_schema":
        spec: dict[str, Any] = {"name": draw(ident), "schema": draw(schema)}
        optional(draw, spec, "strict", st.booleans())
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif fmt != "none":
        body["response_format"] = {"type": fmt}
    if draw(st.booleans()):
        body["tools"] = [
            {"type": "function", "function": {"name": n, "description": draw(text), "parameters": draw(schema)}}
            for n in draw(st.lists(ident, min_size=1, max_size=2, unique=True))
        ]
        choice = draw(st.sampled_from(["auto", "none", "required", "named", "absent"]))
        if choice == "named":
            body["tool_choice"] = {"type": "function", "function": {"name": body["tools"][0]["function"]["name"]}}
        elif choice != "absent":
            body["tool_choice"] = choice
        if choice != "absent":
            optional(draw, body, "parallel_tool_calls", st.booleans())
    if draw(st.booleans()):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


@given(openai_chat_bodies())
def test_openai_chat_request(body: dict[str, Any]) -> None:
    req = decode_chat_request(json_roundtrip(body))
    assert json_roundtrip(encode_chat_request(req, body["model"], stream=req.stream)) == body


@st.composite
def openai_completion_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(ident), "prompt": draw(text), "max_tokens": draw(st.integers(1, 4096))}
    for key, strategy in (
        ("suffix", text),
        ("temperature", st.floats(0, 2)),
        ("top_p", unit),
        ("top_k", st.integers(0, 100)),
        ("seed", st.integers(0, 2**31)),
        ("presence_penalty", penalty),
        ("frequency_penalty", penalty),
        ("user", ident),
        ("stop", st.lists(text, min_size=1, max_size=4)),
        ("n", st.integers(2, 4)),
        ("logprobs", st.integers(0, 5)),
        ("echo", st.just(True)),
        ("best_of", st.integers(2, 4)),
    ):
        optional(draw, body, key, strategy)
    if draw(st.booleans()):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


@given(openai_completion_bodies())
def test_openai_completion_request(body: dict[str, Any]) -> None:
    req = decode_completion_request(json_roundtrip(body))
    assert json_roundtrip(encode_completion_request(req, body["model"], stream=req.stream)) == body


@given(ident, st.lists(text, min_size=1, max_size=4), st.none() | st.integers(1, 4096), st.none() | ident)
def test_openai_embedding_request(model: str, inputs: list[str], dimensions: int | None, user: str | None) -> None:
    body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    if user is not None:
        body["user"] = user
    # Sluice asks every upstream for floats and encodes base64 itself, so the caller's choice is not echoed.
    assert encode_embedding_request(decode_embedding_request({**body, "encoding_format": "base64"}), model) == body


@st.composite
def openai_chat_answers(draw: st.DrawFn) -> dict[str, Any]:
    calls = [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(draw(arguments))}}
        for i, n in enumerate(draw(st.lists(ident, max_size=2, unique=True)))
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": draw(text) if not calls or draw(st.booleans()) else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    optional(draw, message, "reasoning_content", text)
    logprobs = {
        "content": [{"token": draw(text), "logprob": -0.5, "bytes": [104], "top_logprobs": []}],
        "refusal": None,
    }
    body: dict[str, Any] = {
        "id": draw(ident),
        "object": "chat.completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(ident),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs if draw(st.booleans()) else None,
                "finish_reason": "tool_calls" if calls else draw(st.sampled_from(["stop", "length", "content_filter"])),
            }
        ],
    }
    optional(draw, body, "system_fingerprint", ident)
    if draw(st.booleans()):
        prompt, completion = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return body


@given(openai_chat_answers())
def test_openai_chat_answer(body: dict[str, Any]) -> None:
    assert json_roundtrip(encode_chat_response(decode_chat_response(body))) == body
