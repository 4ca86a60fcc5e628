"""OpenAI Responses API requests (``POST /v1/responses``) → the canonical :class:`ChatRequest`.

A Responses request carries its conversation as *items*: messages (text, images), ``function_call`` and
``function_call_output`` items, and ``reasoning`` items. Decoding folds them into canonical messages (a function
call joins the assistant message before it, reasoning joins the assistant message after it) behind the
``instructions`` as a system message. ``previous_response_id`` is resolved by the surface from Sluice's own store:
its conversation arrives here as ``history``, items in the same shapes, decoded the same way.

Built-in tools Sluice cannot run (web search, file search, computer use, code interpreter, ...) and the features
of OpenAI's own service that a translation cannot reproduce (background mode, stored prompts, conversations) are
refused with a 400 naming the field; an upstream that serves the Responses API itself gets the body as it is
(pass-through) and runs what it can.
"""

from __future__ import annotations

import secrets
from typing import Any

from sluice.canonical import ChatRequest, ImagePart, Message, Part, ResponseFormat, TextPart, Tool, ToolCall, ToolChoice
from sluice.codecs import fields as f
from sluice.codecs.images import parse_data_url
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.errors import Unsupported

MIN_OUTPUT_TOKENS = 16  # OpenAI's own lower bound for max_output_tokens
# Fields Sluice handles itself or that ask nothing of the model (echoed back, stored, or ignored on purpose).
_HANDLED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "metadata",
        "user",
        "safety_identifier",
        "stream",
        "stream_options",
        "store",
        "previous_response_id",
        "include",  # extra output detail (encrypted reasoning, logprobs): nothing a translated answer can add
        "truncation",
        "cache",  # Sluice's own cache control, removed before any upstream sees it
    }
)
# Fields an OpenAI-compatible chat upstream takes under the same name.
_CHAT_NATIVE = frozenset({"service_tier", "prompt_cache_key"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def check_responses_request(data: dict[str, Any]) -> str:
    """What every Responses request must get right before Sluice routes it; returns the model name."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    value = data.get("input")
    if value is not None and not isinstance(value, str | list):
        raise f.bad("input", "a string or an array of input items")
    f.opt_int(data, "max_output_tokens", MIN_OUTPUT_TOKENS, f.MAX_TOKENS_CEILING)
    f.opt_bool(data, "stream")
    f.opt_bool(data, "store")
    f.opt_str(data, "previous_response_id")
    f.opt_str(data, "instructions")
    metadata = f.opt_obj(data, "metadata")
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise f.bad("metadata", "an object of string values")
    return model


def decode_responses_request(data: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ChatRequest:
    """Validate a Responses request and turn it into the canonical request (``history`` first, then ``input``)."""
    model = check_responses_request(data)
    _refuse_unsupported(data)
    messages: list[Message] = []
    instructions = f.opt_str(data, "instructions")
    if instructions:
        messages.append(Message("system", [TextPart(instructions)]))
    items = input_items_of(data)
    _fold(messages, history or [], "previous_response_id")
    _fold(messages, items, "input")
    if not any(m.role != "system" for m in messages):
        raise f.missing("input")
    tools, choice = _decode_tools(data)
    reasoning = f.opt_obj(data, "reasoning") or {}
    effort = f.opt_str(reasoning, "effort", "reasoning.effort")
    native = {k: data[k] for k in _CHAT_NATIVE if data.get(k) is not None}
    text = f.opt_obj(data, "text") or {}
    verbosity = f.opt_str(text, "verbosity", "text.verbosity")
    if verbosity is not None and verbosity != "medium":
        native["verbosity"] = verbosity  # chat completions has it too; other kinds refuse it by name
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=f.opt_int(data, "max_output_tokens", MIN_OUTPUT_TOKENS, f.MAX_TOKENS_CEILING),
        temperature=f.opt_num(data, "temperature", 0, 2),
        top_p=f.opt_num(data, "top_p", 0, 1),
        tools=tools,
        tool_choice=choice,
        response_format=_decode_format(data),
        stream=bool(f.opt_bool(data, "stream")),
        include_usage=True,
        user=f.opt_str(data, "safety_identifier") or f.opt_str(data, "user"),
        think=None if effort in (None, "none") else effort,
        native={"openai": native} if native else {},
        client_format="responses",
    )


def input_items_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's input as a list of items (a string is one user message)."""
    value = data.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [f.obj(item, f"input[{i}]") for i, item in enumerate(value)]


def _refuse_unsupported(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in _HANDLED or key in _CHAT_NATIVE or value is None or value is False or value in ("", [], {}):
            continue
        if (key == "truncation" and value == "disabled") or (key == "top_logprobs" and value == 0):
            continue
        raise Unsupported(
            f"Parameter '{key}' of the Responses API is not available for this model: Sluice translates the request "
            "for its upstream and cannot reproduce it.",
            param=key,
            code="unsupported_parameter",
        )


# --- items → canonical messages ---------------------------------------------------------------------------------


def _fold(messages: list[Message], items: list[dict[str, Any]], where: str) -> None:
    reasoning: str | None = None
    for i, item in enumerate(items):
        path = f"{where}[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            message = _message(item, path)
            if message.role == "assistant" and reasoning is not None:
                message.reasoning, reasoning = reasoning, None
            _append(messages, message)
        elif kind == "function_call":
            call = ToolCall(
                f.req_str(item, "call_id", f"{path}.call_id"),
                f.req_str(item, "name", f"{path}.name"),
                f.opt_str(item, "arguments", f"{path}.arguments") or "",
            )
            last = messages[-1] if messages else None
            if last is None or last.role != "assistant":
                last = Message("assistant", reasoning=reasoning)
                reasoning = None
                messages.append(last)
            last.tool_calls.append(call)
        elif kind == "function_call_output":
            messages.append(
                Message(
                    "tool",
                    _output_parts(item.get("output"), f"{path}.output"),
                    tool_call_id=f.req_str(item, "call_id", f"{path}.call_id"),
                )
            )
        elif kind == "reasoning":
            text = _reasoning_text(item)
            reasoning = (reasoning or "") + text if text else reasoning
        else:
            raise Unsupported(
                f"Input item type {kind!r} at '{path}.type' is not supported for this model; Sluice translates "
                "messages, function calls, function call outputs and reasoning.",
                param=f"{path}.type",
            )


def _append(messages: list[Message], message: Message) -> None:
    """Consecutive assistant pieces (text, then calls) are one canonical assistant message."""
    last = messages[-1] if messages else None
    if (
        message.role == "assistant"
        and last is not None
        and last.role == "assistant"
        and not last.tool_calls
        and not message.reasoning
    ):
        last.content.extend(message.content)
        return
    messages.append(message)


def _message(item: dict[str, Any], path: str) -> Message:
    role_name = f.req_str(item, "role", f"{path}.role")
    role = _ROLES.get(role_name)
    if role is None:
        raise f.bad(f"{path}.role", "one of 'user', 'assistant', 'system', 'developer'")
    content = item.get("content")
    if content is None:
        raise f.missing(f"{path}.content")
    return Message(role, _parts(content, f"{path}.content", images=role == "user"))  # type: ignore[arg-type]


def _parts(value: Any, path: str, images: bool) -> list[Part]:
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise f.bad(path, "a string or an array of content parts")
    parts: list[Part] = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        part = f.obj(raw, where)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(f.req_str(part, "text", f"{where}.text")))
        elif kind == "refusal":
            parts.append(TextPart(f.req_str(part, "refusal", f"{where}.refusal")))
        elif kind == "input_image" and images:
            parts.append(_image(part, where))
        else:
            raise Unsupported(
                f"Content part type {kind!r} at '{where}.type' is not supported; use 'input_text' or 'input_image'.",
                param=f"{where}.type",
            )
    return parts


def _image(part: dict[str, Any], where: str) -> ImagePart:
    url = f.opt_str(part, "image_url", f"{where}.image_url")
    if url is None:
        raise Unsupported(
            f"Images by 'file_id' ('{where}') need OpenAI's file store; send 'image_url' (an http(s) or data: URL).",
            param=f"{where}.file_id",
        )
    detail = f.opt_str(part, "detail", f"{where}.detail")
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, f"{where}.image_url")
        return ImagePart(data=data, media_type=media_type, detail=detail)
    if not url.startswith(("http://", "https://")):
        raise f.bad(f"{where}.image_url", "an http(s) URL or a data: URL")
    return ImagePart(url=url, detail=detail)


def _output_parts(value: Any, path: str) -> list[Part]:
    if isinstance(value, str):
        return [TextPart(value)]
    if value is None:
        raise f.missing(path)
    return _parts(value, path, images=True)


def _reasoning_text(item: dict[str, Any]) -> str:
    pieces = [
        str(part.get("text") or "")
        for key in ("content", "summary")
        for part in item.get(key) or ()
        if isinstance(part, dict)
    ]
    return "".join(pieces)


# --- tools and formats ------------------------------------------------------------------------------------------


def _decode_tools(data: dict[str, Any]) -> tuple[list[Tool], ToolChoice | None]:
    tools: list[Tool] = []
    for i, raw in enumerate(f.opt_list(data, "tools") or []):
        where = f"tools[{i}]"
        tool = f.obj(raw, where)
        kind = tool.get("type", "function")
        if kind != "function":
            raise Unsupported(
                f"The built-in tool {kind!r} ('{where}.type') cannot run for this model: only OpenAI's own service "
                "runs it, and this model's upstream is not one that does. Offer it as a function tool instead.",
                param=f"{where}.type",
                code="unsupported_tool",
            )
        parameters = f.opt_obj(tool, "parameters", f"{where}.parameters")
        tools.append(
            Tool(
                name=f.req_str(tool, "name", f"{where}.name"),
                description=f.opt_str(tool, "description", f"{where}.description"),
                parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
                strict=f.opt_bool(tool, "strict", f"{where}.strict"),
            )
        )
    parallel = f.opt_bool(data, "parallel_tool_calls")
    value = data.get("tool_choice")
    if value is None:
        return tools, ToolChoice("auto", parallel=parallel) if parallel is not None and tools else None
    if value in ("auto", "none", "required"):
        return tools, ToolChoice(value, parallel=parallel)
    choice = f.obj(value, "tool_choice")
    if choice.get("type") == "function":
        return tools, ToolChoice("tool", f.req_str(choice, "name", "tool_choice.name"), parallel)
    if choice.get("type") == "allowed_tools":
        allowed = {t.get("name") for t in f.opt_list(choice, "tools", "tool_choice.tools") or [] if isinstance(t, dict)}
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise f.bad("tool_choice.mode", "'auto' or 'required'")
        return [t for t in tools if t.name in allowed], ToolChoice(mode, parallel=parallel)
    raise f.bad("tool_choice", "'none', 'auto', 'required', a function or allowed_tools")


def _decode_format(data: dict[str, Any]) -> ResponseFormat | None:
    text = f.opt_obj(data, "text")
    spec = f.opt_obj(text, "format", "text.format") if text is not None else None
    if spec is None:
        return None
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        schema = f.opt_obj(spec, "schema", "text.format.schema")
        if schema is None:
            raise f.missing("text.format.schema")
        return ResponseFormat(
            "json_schema",
            schema=schema,
            name=f.opt_str(spec, "name", "text.format.name") or "response",
            strict=f.opt_bool(spec, "strict", "text.format.strict"),
        )
    raise f.bad("text.format.type", "'text', 'json_object' or 'json_schema'")
