"""Wire → canonical → wire for the Anthropic and Ollama codecs (requests, answers, Ollama's generate, embed and its
NDJSON stream), with bodies drawn in each encoder's normal form so that equality is exact."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from sluice.canonical import StreamEvent
from sluice.codecs.anthropic.request import THINKING_BUDGETS, decode_messages_request, encode_messages_request
from sluice.codecs.anthropic.response import decode_message_response, encode_message_response
from sluice.codecs.framing import NDJSONParser
from sluice.codecs.ollama.request import (
    decode_chat_request,
    decode_embed_request,
    decode_generate_request,
    encode_chat_request,
    encode_embed_request,
    encode_generate_request,
)
from sluice.codecs.ollama.response import Timings
from sluice.codecs.ollama.stream import LineEncoder, NDJSONDecoder

text = st.text(min_size=1, max_size=20)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
unit = st.floats(0, 1)
int64 = st.integers(-(2**63), 2**63 - 1)
arguments = st.dictionaries(ident, int64 | st.text(max_size=8) | st.booleans(), max_size=3)
schema = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(ident, st.just({"type": "string"}), max_size=2)}
)
PNG = "iVBORw0KGgo="


def json_roundtrip(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def optional(draw: st.DrawFn, body: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        body[key] = draw(strategy)


# --- Anthropic ---------------------------------------------------------------------------------------------------


@st.composite
def anthropic_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []  # tool results open a user turn, before its other blocks (as decoded)
    for turn in range(draw(st.integers(1, 3))):
        blocks: list[dict[str, Any]] = [*results, {"type": "text", "text": draw(text)}]
        if draw(st.booleans()):
            source = draw(
                st.sampled_from(
                    [
                        {"type": "base64", "media_type": "image/png", "data": PNG},
                        {"type": "url", "url": "https://example.com/a.png"},
                    ]
                )
            )
            blocks.append({"type": "image", "source": source})
        out.append({"role": "user", "content": blocks})
        uses = [
            {"type": "tool_use", "id": f"toolu_{turn}_{i}", "name": n, "input": draw(arguments)}
            for i, n in enumerate(draw(st.lists(ident, max_size=2, unique=True)))
        ]
        out.append({"role": "assistant", "content": [{"type": "text", "text": draw(text)}, *uses]})
        results = []
        for use in uses:
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": use["id"],
                "content": [{"type": "text", "text": draw(text)}],
            }
            if draw(st.booleans()):
                result["is_error"] = True
            results.append(result)
    out.append({"role": "user", "content": [*results, {"type": "text", "text": draw(text)}]})
    return out


@st.composite
def anthropic_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(ident),
        "max_tokens": draw(st.integers(1, 4096)),
        "messages": draw(anthropic_messages()),
    }
    for key, strategy in (
        ("system", text),
        ("stop_sequences", st.lists(text, min_size=1, max_size=3)),
        ("temperature", unit),
        ("top_p", unit),
        ("top_k", st.integers(0, 100)),
        ("metadata", st.builds(lambda u: {"user_id": u}, ident)),
        ("service_tier", st.sampled_from(["auto", "standard_only"])),
        ("stream", st.just(True)),
    ):
        optional(draw, body, key, strategy)
    level = draw(st.sampled_from([None, "low", "medium", "high"]))
    if level is not None:
        budget = THINKING_BUDGETS[level]
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] = max(body["max_tokens"], budget + 1)
    if draw(st.booleans()):
        body["tools"] = [
            {"name": n, "description": draw(text), "input_schema": draw(schema)}
            for n in draw(st.lists(ident, min_size=1, max_size=2, unique=True))
        ]
        kind = draw(st.sampled_from(["auto", "any", "tool", "none", "absent"]))
        if kind != "absent":
            choice: dict[str, Any] = {"type": kind}
            if kind == "tool":
                choice["name"] = body["tools"][0]["name"]
            if kind != "none" and draw(st.booleans()):
                choice["disable_parallel_tool_use"] = True
            body["tool_choice"] = choice
    return body


@given(anthropic_bodies())
def test_anthropic_messages_request(body: dict[str, Any]) -> None:
    req = decode_messages_request(json_roundtrip(body))
    assert json_roundtrip(encode_messages_request(req, body["model"], req.stream, 4096)) == body


@st.composite
def anthropic_answers(draw: st.DrawFn) -> dict[str, Any]:
    uses = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": draw(arguments)}
        for i, n in enumerate(draw(st.lists(ident, max_size=2, unique=True)))
    ]
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "thinking", "thinking": draw(text), "signature": ""})
    if not uses or draw(st.booleans()):
        content.append({"type": "text", "text": draw(text)})
    cached = draw(st.integers(0, 1000))
    return {
        "id": draw(ident),
        "type": "message",
        "role": "assistant",
        "model": draw(ident),
        "content": content + uses,
        "stop_reason": "tool_use" if uses else draw(st.sampled_from(["end_turn", "max_tokens", "refusal"])),
        "stop_sequence": None,
        "usage": {
            "input_tokens": draw(st.integers(0, 10**6)),
            "output_tokens": draw(st.integers(0, 10**6)),
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0,
        },
    }


@given(anthropic_answers())
def test_anthropic_message_answer(body: dict[str, Any]) -> None:
    resp = decode_message_response(body)
    assert json_roundtrip(encode_message_response(resp, body["id"], resp.model)) == body


# --- Ollama ------------------------------------------------------------------------------------------------------


def ollama_options(draw: st.DrawFn) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, strategy in (
        ("temperature", st.floats(0, 2)),
        ("top_p", unit),
        ("top_k", st.integers(0, 100)),
        ("seed", st.integers(0, 2**31)),
        ("presence_penalty", st.floats(-2, 2)),
        ("frequency_penalty", st.floats(-2, 2)),
        ("num_predict", st.integers(1, 4096)),
        ("stop", st.lists(text, min_size=1, max_size=3)),
        ("num_ctx", st.sampled_from([2048, 8192])),
        ("mirostat", st.integers(0, 2)),
        ("min_p", unit),
    ):
        optional(draw, options, key, strategy)
    return options


def ollama_common(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    options = ollama_options(draw)
    if options:
        body["options"] = options
    optional(draw, body, "format", st.just("json") | schema)
    optional(draw, body, "think", st.sampled_from([True, "low", "medium", "high"]))
    optional(draw, body, "keep_alive", st.sampled_from(["5m", 0, -1]))
    return body


@st.composite
def ollama_chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        user: dict[str, Any] = {"role": "user", "content": draw(text)}
        optional(draw, user, "images", st.just([PNG]))
        messages.append(user)
        names = draw(st.lists(ident, max_size=2, unique=True))
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(text)}
        if names:
            assistant["tool_calls"] = [{"function": {"name": n, "arguments": draw(arguments)}} for n in names]
        optional(draw, assistant, "thinking", text)
        messages.append(assistant)
        messages += [{"role": "tool", "content": draw(text), "tool_name": n} for n in names]
    body: dict[str, Any] = {"model": draw(ident), "stream": draw(st.booleans()), "messages": messages}
    if draw(st.booleans()):
        body["tools"] = [
            {"type": "function", "function": {"name": n, "description": draw(text), "parameters": draw(schema)}}
            for n in draw(st.lists(ident, min_size=1, max_size=2, unique=True))
        ]
    return ollama_common(draw, body)


@given(ollama_chat_bodies())
def test_ollama_chat_request(body: dict[str, Any]) -> None:
    req = decode_chat_request(json_roundtrip(body))
    assert json_roundtrip(encode_chat_request(req, body["model"], req.stream)) == body


@st.composite
def ollama_generate_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(ident), "stream": draw(st.booleans()), "prompt": draw(text)}
    for key, strategy in (
        ("suffix", text),
        ("system", text),
        ("raw", st.booleans()),
        ("template", text),
        ("context", st.lists(st.integers(0, 50_000), min_size=1, max_size=4)),
    ):
        optional(draw, body, key, strategy)
    return ollama_common(draw, body)


@given(ollama_generate_bodies())
def test_ollama_generate_request(body: dict[str, Any]) -> None:
    req = decode_generate_request(json_roundtrip(body))
    assert json_roundtrip(encode_generate_request(req, body["model"], req.stream)) == body


@given(ident, st.lists(text, min_size=1, max_size=4), st.none() | st.booleans(), st.none() | st.integers(1, 4096))
def test_ollama_embed_request(model: str, inputs: list[str], truncate: bool | None, dimensions: int | None) -> None:
    body: dict[str, Any] = {"model": model, "input": inputs}
    if truncate is not None:
        body["truncate"] = truncate
    if dimensions is not None:
        body["dimensions"] = dimensions
    body.update({"keep_alive": "1m", "options": {"num_thread": 4}})
    assert encode_embed_request(decode_embed_request(body, legacy=False), model) == body


@st.composite
def ollama_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An Ollama chat stream as a server sends it: thinking, text, the tool calls in one line, the done line."""
    head = {"model": "llama", "created_at": "2025-01-01T00:00:00.000000Z"}

    def line(message: dict[str, Any]) -> dict[str, Any]:
        return {**head, "message": {"role": "assistant", "content": "", **message}, "done": False}

    lines = [line({"thinking": piece}) for piece in draw(st.lists(text, max_size=3))]
    lines += [line({"content": piece}) for piece in draw(st.lists(text, max_size=4))]
    names = draw(st.lists(ident, max_size=2, unique=True))
    if names:
        lines.append(line({"tool_calls": [{"function": {"name": n, "arguments": draw(arguments)}} for n in names]}))
    final = {
        **head,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": draw(st.sampled_from(["stop", "length"])) if not names else "stop",
        "total_duration": draw(st.integers(0, 10**12)),
        "load_duration": draw(st.integers(0, 10**9)),
        "prompt_eval_count": draw(st.integers(0, 10**6)),
        "prompt_eval_duration": draw(st.integers(0, 10**9)),
        "eval_count": draw(st.integers(0, 10**6)),
        "eval_duration": draw(st.integers(0, 10**9)),
    }
    return [*lines, final]


@given(ollama_streams(), st.integers(1, 7))
def test_ollama_stream(lines: list[dict[str, Any]], piece: int) -> None:
    wire = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    parser, decoder = NDJSONParser(), NDJSONDecoder()
    events: list[StreamEvent] = []
    for i in range(0, len(wire), piece):  # the upstream may split its lines anywhere
        for frame in parser.feed(wire[i : i + piece]):
            events += decoder.decode(frame)
    assert decoder.complete
    final = lines[-1]
    timings = Timings(
        final["total_duration"], final["load_duration"], final["prompt_eval_duration"], final["eval_duration"]
    )
    encoder = LineEncoder("llama")
    again = b"".join(encoder.encode(e) for e in events) + encoder.close(timings)
    out = [json.loads(line) for line in again.splitlines()]
    strip = ("created_at",)
    assert [{k: v for k, v in line.items() if k not in strip} for line in out] == [
        {k: v for k, v in line.items() if k not in strip} for line in lines
    ]
