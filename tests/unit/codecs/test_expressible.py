"""The one check every translated request passes: what each upstream kind cannot express is a 400 naming the field
in the caller's own terms, or (with drop_unsupported) let through for the encoder to leave out."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.canonical import ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool, ToolChoice
from sluice.codecs.anthropic.request import decode_messages_request, encode_messages_request
from sluice.codecs.expressible import ANTHROPIC, MOCK, OLLAMA, OPENAI, Capabilities, check_expressible
from sluice.codecs.ollama.request import decode_chat_request as decode_ollama_chat
from sluice.codecs.ollama.request import decode_generate_request, encode_chat_request
from sluice.codecs.openai.chat_request import decode_chat_request
from sluice.codecs.openai.completion_request import decode_completion_request
from sluice.errors import Unsupported

TARGETS = {"openai": OPENAI, "anthropic": ANTHROPIC, "ollama": OLLAMA, "mock": MOCK}


def openai_chat(**extra: Any) -> ChatRequest:
    return decode_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})


def anthropic_messages(**extra: Any) -> ChatRequest:
    return decode_messages_request(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def ollama_chat(**extra: Any) -> ChatRequest:
    return decode_ollama_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})


def completion(**extra: Any) -> ChatRequest:
    return decode_completion_request({"model": "m", "prompt": "x", **extra})


def generate(**extra: Any) -> ChatRequest:
    return decode_generate_request({"model": "m", "prompt": "x", **extra})


WEATHER = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
CLAUDE_TOOL = [{"name": "w", "input_schema": {"type": "object"}}]

# (request, the param the refusal names, the upstream kinds that refuse it)
CASES: list[tuple[str, ChatRequest, str, set[str]]] = [
    ("n", openai_chat(n=2), "n", {"anthropic", "ollama"}),
    ("logprobs", openai_chat(logprobs=True, top_logprobs=2), "logprobs", {"anthropic", "ollama", "mock"}),
    (
        "completion logprobs",
        completion(logprobs=2),
        "logprobs",
        {"anthropic", "ollama", "mock"},
    ),
    ("seed", openai_chat(seed=7), "seed", {"anthropic"}),
    ("presence_penalty", openai_chat(presence_penalty=0.5), "presence_penalty", {"anthropic"}),
    ("frequency_penalty", openai_chat(frequency_penalty=-0.5), "frequency_penalty", {"anthropic"}),
    ("json_object", openai_chat(response_format={"type": "json_object"}), "response_format", set()),
    (
        "json_schema",
        openai_chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        "response_format",
        set(),
    ),
    ("forced tool", openai_chat(tools=WEATHER, tool_choice="required"), "tool_choice", {"ollama"}),
    (
        "serial tools",
        openai_chat(tools=WEATHER, parallel_tool_calls=False),
        "parallel_tool_calls",
        {"ollama"},
    ),
    (
        "strict tool",
        openai_chat(tools=[{"type": "function", "function": {"name": "w", "strict": True}}]),
        "tools[0].function.strict",
        {"ollama"},
    ),
    (
        "anthropic strict tool",
        anthropic_messages(tools=[{**CLAUDE_TOOL[0], "strict": True}]),
        "tools[0].strict",
        {"ollama"},
    ),
    (
        "suffix",
        decode_completion_request({"model": "m", "prompt": "x", "suffix": "y"}),
        "suffix",
        {"anthropic", "mock"},
    ),
    (
        "image URL",
        openai_chat(
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]
        ),
        "messages",
        {"ollama"},
    ),
    ("logit_bias", openai_chat(logit_bias={"50256": -100}), "logit_bias", {"anthropic", "ollama", "mock"}),
    (
        "completion echo",
        decode_completion_request({"model": "m", "prompt": "x", "echo": True}),
        "echo",
        {"anthropic", "ollama", "mock"},
    ),
    ("service_tier", anthropic_messages(service_tier="auto"), "service_tier", {"openai", "ollama", "mock"}),
    (
        "disable_parallel_tool_use",
        anthropic_messages(tools=CLAUDE_TOOL, tool_choice={"type": "auto", "disable_parallel_tool_use": True}),
        "tool_choice.disable_parallel_tool_use",
        {"ollama"},
    ),
    ("mirostat", ollama_chat(options={"mirostat": 2}), "options.mirostat", {"openai", "anthropic", "mock"}),
    ("min_p", ollama_chat(options={"min_p": 0.05}), "options.min_p", {"openai", "anthropic", "mock"}),
    ("ollama seed", ollama_chat(options={"seed": 3}), "options.seed", {"anthropic"}),
    ("ollama format", ollama_chat(format={"type": "object"}), "format", set()),
    (
        "anthropic output_config",
        anthropic_messages(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}),
        "output_config",
        set(),
    ),
    (
        "anthropic effort",
        anthropic_messages(output_config={"effort": "low"}),
        "output_config",
        {"openai", "ollama", "mock"},
    ),
    ("ollama logprobs", ollama_chat(logprobs=True), "logprobs", {"anthropic", "ollama", "mock"}),
    (
        "generate context",
        generate(context=[1, 2, 3]),
        "context",
        {"openai", "anthropic", "mock"},
    ),
    (
        "raw prompt",
        decode_generate_request({"model": "m", "prompt": "x", "raw": True}),
        "raw",
        {"openai", "anthropic", "mock"},
    ),
]


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize(("name", "req", "param", "refused_by"), CASES, ids=[c[0] for c in CASES])
def test_each_upstream_kind_refuses_exactly_what_it_cannot_express(
    name: str, req: ChatRequest, param: str, refused_by: set[str], target: str
) -> None:
    caps = TARGETS[target]
    if target not in refused_by:
        check_expressible(req, caps, drop=False)
        return
    with pytest.raises(Unsupported) as caught:
        check_expressible(req, caps, drop=False)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert f"'{param}'" in caught.value.message and caps.label in caught.value.message


@pytest.mark.parametrize(("name", "req", "param", "refused_by"), CASES, ids=[c[0] for c in CASES])
def test_drop_unsupported_lets_every_refused_feature_through(
    name: str, req: ChatRequest, param: str, refused_by: set[str]
) -> None:
    for target in refused_by:
        check_expressible(req, TARGETS[target], drop=True)


def test_what_asks_for_nothing_and_ollama_runtime_options_are_never_refused() -> None:
    quiet = openai_chat(logit_bias={}, store=False, prediction=None, presence_penalty=0.0, logprobs=False)
    runtime = ollama_chat(keep_alive="5m", options={"num_ctx": 8192, "num_gpu": 1, "mirostat": None})
    for caps in TARGETS.values():
        check_expressible(quiet, caps, drop=False)
        check_expressible(runtime, caps, drop=False)


def test_a_request_is_checked_against_its_own_native_fields_only_where_the_format_differs() -> None:
    check_expressible(anthropic_messages(service_tier="auto"), ANTHROPIC, drop=False)
    check_expressible(ollama_chat(options={"mirostat": 2}), OLLAMA, drop=False)
    check_expressible(openai_chat(logit_bias={"1": 2}), OPENAI, drop=False)


def test_the_first_problem_is_named_and_the_message_says_how_to_proceed() -> None:
    req = ChatRequest("m", [Message("user", [TextPart("hi")])], n=2, seed=1)
    with pytest.raises(Unsupported) as caught:
        check_expressible(req, ANTHROPIC, drop=False)
    assert caught.value.param == "n"
    assert "remove 'n'" in caught.value.message and "drop_unsupported" in caught.value.message


def test_dropped_features_are_left_out_by_the_encoders() -> None:
    """What the check lets through under drop_unsupported never reaches the wire of a format that lacks it."""
    req = ChatRequest(
        "m",
        [Message("user", [TextPart("hi"), ImagePart(url="https://x/a.png")])],
        n=2,
        logprobs=True,
        seed=3,
        presence_penalty=0.5,
        response_format=ResponseFormat("json_object"),
        tools=[Tool("w", strict=True)],
        tool_choice=ToolChoice("required", parallel=False),
        native={"openai": {"logit_bias": {"1": 2}}},
    )
    anthropic = encode_messages_request(req, "claude", False, 100)
    assert not {"n", "logprobs", "seed", "presence_penalty", "response_format", "logit_bias"} & set(anthropic)
    ollama = encode_chat_request(req, "llama", False)
    assert not {"n", "logprobs", "tool_choice", "logit_bias", "parallel_tool_calls"} & set(ollama)
    assert "images" not in ollama["messages"][0]


def test_capabilities_table_matches_the_documented_matrix() -> None:
    """docs/api.md lists these refusals; a change to the table must change the docs too."""
    lacking = {
        name: {f for f in Capabilities.__dataclass_fields__ if getattr(caps, f) is False}
        for name, caps in TARGETS.items()
    }
    assert lacking == {
        "openai": set(),
        "anthropic": {"choices", "logprobs", "seed", "penalties", "suffix"},
        "ollama": {"choices", "logprobs", "forced_tool", "serial_tools", "strict_tools", "image_urls"},
        "mock": {"logprobs", "suffix"},
    }
