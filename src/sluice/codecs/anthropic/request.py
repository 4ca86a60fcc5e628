"""Anthropic Messages requests ⇄ canonical :class:`ChatRequest`.

Anthropic keeps tool results inside user messages; the canonical model (like OpenAI) has a ``tool`` message per
result. Decoding splits a user message into its tool results (in order) followed by the rest of its content;
encoding merges consecutive tool results and user content back into one user message, since Anthropic wants the
roles to alternate.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import ChatRequest, ImagePart, Message, Part, TextPart, Tool, ToolCall, ToolChoice
from sluice.codecs import fields as f
from sluice.codecs.anthropic.structured import apply_structured, closed_objects, decode_output_format
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.errors import InvalidRequest, Unsupported

# thinking: True or an effort level → a token budget (Anthropic asks for a budget, not a level)
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
DEFAULT_THINKING_BUDGET = 4096

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "stream",
        "thinking",
        "output_config",
        "output_format",
    }
)


# --- Anthropic client → canonical --------------------------------------------------------------------------


def decode_messages_request(data: dict[str, Any]) -> ChatRequest:
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    max_tokens = f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING)
    if max_tokens is None:
        raise f.missing("max_tokens")
    raw_messages = f.opt_list(data, "messages")
    if raw_messages is None:
        raise f.missing("messages")
    messages = _decode_system(data.get("system"))
    for i, raw in enumerate(raw_messages):
        messages.extend(_decode_message(raw, f"messages[{i}]"))
    if not any(m.role != "system" for m in messages):
        raise f.bad("messages", "a non-empty array")
    metadata = f.opt_obj(data, "metadata")
    user = metadata.get("user_id") if metadata else None
    native = {k: v for k, v in data.items() if k not in _KNOWN}
    response_format, output_rest = decode_output_format(data)
    if output_rest:
        native["output_config"] = output_rest  # effort and whatever Anthropic adds: its own upstreams take them
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        response_format=response_format,
        temperature=f.opt_num(data, "temperature", 0, 1),
        top_p=f.opt_num(data, "top_p", 0, 1),
        top_k=f.opt_int(data, "top_k", 0),
        stop=f.stop_list(data.get("stop_sequences"), "stop_sequences", max_items=64),
        tools=[_decode_tool(t, f"tools[{i}]") for i, t in enumerate(f.opt_list(data, "tools") or [])],
        tool_choice=_decode_tool_choice(f.opt_obj(data, "tool_choice")),
        stream=bool(f.opt_bool(data, "stream")),
        include_usage=True,
        user=user if isinstance(user, str) else None,
        metadata=metadata,
        think=_decode_thinking(f.opt_obj(data, "thinking")),
        native={"anthropic": native} if native else {},
        client_format="anthropic",
    )


def _decode_system(value: Any) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message("system", [TextPart(value)])]
    if isinstance(value, list):
        parts: list[Part] = []
        for i, block in enumerate(value):
            block = f.obj(block, f"system[{i}]")
            if block.get("type") != "text":
                raise f.bad(f"system[{i}].type", "'text'")
            parts.append(TextPart(f.req_str(block, "text", f"system[{i}].text")))
        return [Message("system", parts)]
    raise f.bad("system", "a string or an array of text blocks")


def _decode_message(raw: Any, path: str) -> list[Message]:
    message = f.obj(raw, path)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise f.bad(f"{path}.role", "'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return [Message(role, [TextPart(content)])]
    if not isinstance(content, list):
        raise f.missing(f"{path}.content") if content is None else f.bad(f"{path}.content", "a string or an array")
    if role == "assistant":
        return [_decode_assistant(content, path)]
    results: list[Message] = []
    parts: list[Part] = []
    for i, raw_block in enumerate(content):
        where = f"{path}.content[{i}]"
        block = f.obj(raw_block, where)
        kind = block.get("type")
        if kind == "tool_result":
            results.append(_decode_tool_result(block, where))
        elif kind == "text":
            parts.append(TextPart(f.req_str(block, "text", f"{where}.text")))
        elif kind == "image":
            parts.append(_decode_image(block, where))
        else:
            raise Unsupported(f"Content block type {kind!r} at '{where}.type' is not supported.", param=f"{where}.type")
    if parts or not results:
        results.append(Message("user", parts))
    return results


def _decode_assistant(content: list[Any], path: str) -> Message:
    message = Message("assistant")
    for i, raw_block in enumerate(content):
        where = f"{path}.content[{i}]"
        block = f.obj(raw_block, where)
        kind = block.get("type")
        if kind == "text":
            message.content.append(TextPart(f.req_str(block, "text", f"{where}.text")))
        elif kind == "tool_use":
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise f.bad(f"{where}.input", "an object")
            message.tool_calls.append(
                ToolCall(
                    f.req_str(block, "id", f"{where}.id"),
                    f.req_str(block, "name", f"{where}.name"),
                    orjson.dumps(arguments).decode(),
                )
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                message.reasoning = (message.reasoning or "") + thinking
        else:
            raise Unsupported(f"Content block type {kind!r} at '{where}.type' is not supported.", param=f"{where}.type")
    return message


def _decode_tool_result(block: dict[str, Any], path: str) -> Message:
    content = block.get("content", "")
    parts: list[Part] = []
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, list):
        for i, raw in enumerate(content):
            inner = f.obj(raw, f"{path}.content[{i}]")
            if inner.get("type") == "text":
                parts.append(TextPart(f.req_str(inner, "text", f"{path}.content[{i}].text")))
            elif inner.get("type") == "image":
                parts.append(_decode_image(inner, f"{path}.content[{i}]"))
            else:
                raise f.bad(f"{path}.content[{i}].type", "'text' or 'image'")
    else:
        raise f.bad(f"{path}.content", "a string or an array of blocks")
    return Message(
        "tool",
        parts,
        tool_call_id=f.req_str(block, "tool_use_id", f"{path}.tool_use_id"),
        is_error=bool(f.opt_bool(block, "is_error", f"{path}.is_error")),
    )


def _decode_image(block: dict[str, Any], path: str) -> ImagePart:
    source = f.obj(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        return ImagePart(
            data=f.req_str(source, "data", f"{path}.source.data"),
            media_type=f.req_str(source, "media_type", f"{path}.source.media_type"),
        )
    if kind == "url":
        url = f.req_str(source, "url", f"{path}.source.url")
        if not url.startswith(("http://", "https://")):
            raise f.bad(f"{path}.source.url", "an http(s) URL")
        return ImagePart(url=url)
    raise f.bad(f"{path}.source.type", "'base64' or 'url'")


def _decode_tool(raw: Any, path: str) -> Tool:
    tool = f.obj(raw, path)
    schema = f.opt_obj(tool, "input_schema", f"{path}.input_schema")
    if schema is None:
        raise f.missing(f"{path}.input_schema")
    return Tool(
        name=f.req_str(tool, "name", f"{path}.name"),
        description=f.opt_str(tool, "description", f"{path}.description"),
        parameters=schema,
        strict=f.opt_bool(tool, "strict", f"{path}.strict"),
    )


def _decode_tool_choice(value: dict[str, Any] | None) -> ToolChoice | None:
    if value is None:
        return None
    parallel = None if "disable_parallel_tool_use" not in value else not value["disable_parallel_tool_use"]
    kind = value.get("type")
    if kind == "auto":
        return ToolChoice("auto", parallel=parallel)
    if kind == "any":
        return ToolChoice("required", parallel=parallel)
    if kind == "none":
        return ToolChoice("none")
    if kind == "tool":
        return ToolChoice("tool", name=f.req_str(value, "name", "tool_choice.name"), parallel=parallel)
    raise f.bad("tool_choice.type", "'auto', 'any', 'tool' or 'none'")


def _decode_thinking(value: dict[str, Any] | None) -> bool | str | None:
    if value is None or value.get("type") == "disabled":
        return None
    budget = f.opt_int(value, "budget_tokens", 1, f.MAX_TOKENS_CEILING, "thinking.budget_tokens")
    for level in ("low", "medium", "high"):
        tokens = THINKING_BUDGETS[level]
        if budget is not None and budget <= tokens:
            return level
    return "high" if budget is not None else True


# --- canonical → Anthropic upstream ------------------------------------------------------------------------


def encode_messages_request(
    req: ChatRequest, upstream_model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    """The body for an Anthropic upstream; what Anthropic cannot say was refused before (codecs/expressible.py)."""
    system = [m for m in req.messages if m.role == "system"]
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": req.max_tokens or default_max_tokens,
        "messages": _encode_messages(req),
    }
    if system:
        text = "\n\n".join(m.text() for m in system)
        body["system"] = text
    if req.stop:
        body["stop_sequences"] = req.stop
    for key in ("temperature", "top_p", "top_k"):
        value = getattr(req, key)
        if value is not None:
            body[key] = min(value, 1.0) if key == "temperature" else value
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = _encode_tool_choice(req.tool_choice)  # "none" included: Anthropic has it too
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.think and req.think != "none":
        level = req.think if isinstance(req.think, str) else ""
        budget = THINKING_BUDGETS.get(level, DEFAULT_THINKING_BUDGET)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        body["max_tokens"] = max(body["max_tokens"], budget + 1)
    if stream:
        body["stream"] = True
    native = dict(req.native.get("anthropic", {}))
    if isinstance(native.get("output_config"), dict):
        body["output_config"] = {**native.pop("output_config"), **body.get("output_config", {})}
    body.update(native)
    apply_structured(body, req)
    return body


def _encode_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = closed_objects(tool.parameters) if tool.strict else tool.parameters
    if tool.strict:
        out["strict"] = True
    return out


def _encode_tool_choice(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": {"auto": "auto", "required": "any", "tool": "tool", "none": "none"}[choice.mode]}
    if choice.mode == "tool":
        out["name"] = choice.name
    if choice.parallel is False and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _encode_messages(req: ChatRequest) -> list[dict[str, Any]]:
    if req.prompt is not None:
        return [{"role": "user", "content": req.prompt}]
    out: list[dict[str, Any]] = []
    for message in req.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _encode_blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # Anthropic wants alternating roles: merge
        else:
            out.append({"role": role, "content": blocks})
    return out


def _encode_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        content: list[dict[str, Any]] = [_encode_part(p) for p in message.content]
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": content}
        if message.is_error:
            block["is_error"] = True
        return [block]
    blocks = [_encode_part(p) for p in message.content if not (isinstance(p, TextPart) and not p.text)]
    for call in message.tool_calls:
        try:
            arguments = orjson.loads(call.arguments) if call.arguments else {}
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                f"Tool call {call.id!r} has arguments that are not valid JSON.", param="messages"
            ) from None
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    if not blocks:
        blocks.append({"type": "text", "text": ""})
    return blocks


def _encode_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.url is not None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data or ""},
    }
