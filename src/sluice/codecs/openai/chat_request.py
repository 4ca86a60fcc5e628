"""OpenAI Chat Completions requests ⇄ canonical :class:`ChatRequest`."""

from __future__ import annotations

from typing import Any

from sluice.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from sluice.codecs import fields as f
from sluice.codecs.images import data_url, parse_data_url
from sluice.errors import InvalidRequest, Unsupported

# Fields a request could use to choose an upstream or its credentials. Upstreams come from configuration only
# (SECURITY.md case 18), so these are refused rather than silently ignored: the caller learns at once.
UPSTREAM_CHOOSING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "extra_headers",
        "custom_llm_provider",
        "azure_ad_token",
    }
)

# Fields the canonical model carries; anything else is kept verbatim for an OpenAI-compatible upstream.
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "logprobs",
        "top_logprobs",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "reasoning_effort",
        "functions",
        "function_call",
    }
)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def refuse_upstream_fields(data: dict[str, Any]) -> None:
    for key in UPSTREAM_CHOOSING_FIELDS.intersection(data):
        raise InvalidRequest(
            f"Parameter '{key}' is not allowed: Sluice chooses upstreams and credentials from its configuration.",
            param=key,
            code="forbidden_parameter",
        )


def check_chat_request(data: dict[str, Any]) -> str:
    """The checks the pass-through path makes before forwarding; returns the model name.

    Shallow on purpose: the fields Sluice itself relies on (model, limits inputs, stream flags) and the shape of
    each message. An OpenAI-compatible upstream validates the rest and its 400 reaches the caller as it is.
    """
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise f.missing("messages") if messages is None else f.bad("messages", "a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise f.bad(f"messages[{i}]", "an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise f.bad(f"messages[{i}].role", "one of 'system', 'developer', 'user', 'assistant', 'tool'")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise f.bad(f"messages[{i}].content", "a string or an array of content parts")
    f.opt_int(data, "max_completion_tokens", 1, f.MAX_TOKENS_CEILING)
    f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING)
    f.opt_int(data, "n", 1, f.MAX_N)
    f.opt_bool(data, "stream")
    f.opt_num(data, "temperature", 0, 2)
    f.opt_num(data, "top_p", 0, 1)
    options = f.opt_obj(data, "stream_options")
    if options is not None:
        f.opt_bool(options, "include_usage", "stream_options.include_usage")
    return model


def decode_chat_request(data: dict[str, Any]) -> ChatRequest:
    """Validate an OpenAI chat request body and turn it into the canonical request."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    raw_messages = f.opt_list(data, "messages")
    if not raw_messages:
        raise f.missing("messages") if raw_messages is None else f.bad("messages", "a non-empty array")
    messages = [_decode_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages)]
    max_tokens = f.opt_int(data, "max_completion_tokens", 1, f.MAX_TOKENS_CEILING)
    if max_tokens is None:
        max_tokens = f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING)
    stream = bool(f.opt_bool(data, "stream"))
    stream_options = f.opt_obj(data, "stream_options") or {}
    include_usage = bool(f.opt_bool(stream_options, "include_usage", "stream_options.include_usage"))
    tools = _decode_tools(data)
    top_logprobs = f.opt_int(data, "top_logprobs", 0, 20)
    native = {k: v for k, v in data.items() if k not in _KNOWN}
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=f.opt_num(data, "temperature", 0, 2),
        top_p=f.opt_num(data, "top_p", 0, 1),
        top_k=f.opt_int(data, "top_k", 0),
        stop=f.stop_list(data.get("stop"), "stop"),
        n=f.opt_int(data, "n", 1, f.MAX_N) or 1,
        seed=f.opt_int(data, "seed"),
        presence_penalty=f.opt_num(data, "presence_penalty", -2, 2),
        frequency_penalty=f.opt_num(data, "frequency_penalty", -2, 2),
        tools=tools,
        tool_choice=_decode_tool_choice(data),
        response_format=_decode_response_format(f.opt_obj(data, "response_format")),
        logprobs=f.opt_bool(data, "logprobs"),
        top_logprobs=top_logprobs,
        stream=stream,
        include_usage=include_usage,
        user=f.opt_str(data, "user"),
        metadata=f.opt_obj(data, "metadata"),
        think=f.opt_str(data, "reasoning_effort"),
        native={"openai": native} if native else {},
    )


def _decode_message(raw: Any, path: str) -> Message:
    m = f.obj(raw, path)
    role_name = f.req_str(m, "role", f"{path}.role")
    role = _ROLES.get(role_name)
    if role is None:
        raise f.bad(f"{path}.role", "one of 'system', 'developer', 'user', 'assistant', 'tool'")
    content = _decode_content(m.get("content"), f"{path}.content", allow_images=role == "user")
    msg = Message(role=role, content=content, name=f.opt_str(m, "name", f"{path}.name"))  # type: ignore[arg-type]
    if role == "assistant":
        calls = f.opt_list(m, "tool_calls", f"{path}.tool_calls") or []
        msg.tool_calls = [_decode_tool_call(c, f"{path}.tool_calls[{i}]") for i, c in enumerate(calls)]
        legacy = f.opt_obj(m, "function_call", f"{path}.function_call")
        if legacy is not None:
            msg.tool_calls.append(_decode_function(legacy, f"{path}.function_call", call_id="call_legacy"))
        reasoning = m.get("reasoning_content") or m.get("reasoning")
        if isinstance(reasoning, str):
            msg.reasoning = reasoning
        if m.get("content") is None and not msg.tool_calls and not msg.reasoning:
            raise f.missing(f"{path}.content")
    elif role == "tool":
        msg.tool_call_id = f.req_str(m, "tool_call_id", f"{path}.tool_call_id")
    elif m.get("content") is None:
        raise f.missing(f"{path}.content")
    return msg


def _decode_content(value: Any, path: str, allow_images: bool) -> list[Part]:
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise f.bad(path, "a string or an array of content parts")
    parts: list[Part] = []
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        part = f.obj(raw, where)
        kind = part.get("type")
        if kind == "text":
            parts.append(TextPart(f.req_str(part, "text", f"{where}.text")))
        elif kind == "image_url" and allow_images:
            image = part.get("image_url")
            url = (
                image
                if isinstance(image, str)
                else f.req_str(f.obj(image, f"{where}.image_url"), "url", f"{where}.image_url.url")
            )
            detail = image.get("detail") if isinstance(image, dict) else None
            parts.append(_image_from_url(url, f"{where}.image_url.url", detail))
        elif kind == "image_url":
            raise f.bad(f"{where}.type", "'text' (images are accepted in user messages only)")
        else:
            raise Unsupported(
                f"Content part type {kind!r} at '{where}.type' is not supported; use 'text' or 'image_url'.",
                param=f"{where}.type",
            )
    return parts


def _image_from_url(url: str, path: str, detail: Any) -> ImagePart:
    detail_str = detail if isinstance(detail, str) else None
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, path)
        return ImagePart(data=data, media_type=media_type, detail=detail_str)
    if not url.startswith(("http://", "https://")):
        raise f.bad(path, "an http(s) URL or a data: URL")
    return ImagePart(url=url, detail=detail_str)


def _decode_tool_call(raw: Any, path: str) -> ToolCall:
    call = f.obj(raw, path)
    function = f.obj(call.get("function"), f"{path}.function")
    return _decode_function(function, f"{path}.function", call_id=f.req_str(call, "id", f"{path}.id"))


def _decode_function(function: dict[str, Any], path: str, call_id: str) -> ToolCall:
    name = f.req_str(function, "name", f"{path}.name")
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        raise f.bad(f"{path}.arguments", "a string of JSON")
    return ToolCall(id=call_id, name=name, arguments=arguments)


def _decode_tools(data: dict[str, Any]) -> list[Tool]:
    tools: list[Tool] = []
    for i, raw in enumerate(f.opt_list(data, "tools") or []):
        where = f"tools[{i}]"
        tool = f.obj(raw, where)
        if tool.get("type", "function") != "function":
            raise Unsupported(f"Tool type {tool.get('type')!r} is not supported.", param=f"{where}.type")
        fn = f.obj(tool.get("function"), f"{where}.function")
        tools.append(_decode_tool_function(fn, f"{where}.function"))
    for i, raw in enumerate(f.opt_list(data, "functions") or []):
        tools.append(_decode_tool_function(f.obj(raw, f"functions[{i}]"), f"functions[{i}]"))
    return tools


def _decode_tool_function(fn: dict[str, Any], path: str) -> Tool:
    parameters = f.opt_obj(fn, "parameters", f"{path}.parameters")
    return Tool(
        name=f.req_str(fn, "name", f"{path}.name"),
        description=f.opt_str(fn, "description", f"{path}.description"),
        parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
        strict=f.opt_bool(fn, "strict", f"{path}.strict"),
    )


def _decode_tool_choice(data: dict[str, Any]) -> ToolChoice | None:
    value = data.get("tool_choice", data.get("function_call"))
    parallel = f.opt_bool(data, "parallel_tool_calls")
    if value is None:
        return ToolChoice("auto", parallel=parallel) if parallel is not None else None
    if value in ("auto", "none", "required"):
        return ToolChoice(value, parallel=parallel)
    if isinstance(value, dict):
        fn = value.get("function") if "function" in value else value
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ToolChoice("tool", name=fn["name"], parallel=parallel)
    raise f.bad("tool_choice", "'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}")


def _decode_response_format(value: dict[str, Any] | None) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type")
    if kind == "text":
        return ResponseFormat("text")
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = f.obj(value.get("json_schema"), "response_format.json_schema")
        schema = f.opt_obj(spec, "schema", "response_format.json_schema.schema")
        return ResponseFormat(
            "json_schema",
            schema=schema or {},
            name=f.opt_str(spec, "name", "response_format.json_schema.name"),
            strict=f.opt_bool(spec, "strict", "response_format.json_schema.strict"),
        )
    raise f.bad("response_format.type", "'text', 'json_object' or 'json_schema'")


# --- canonical → OpenAI (for OpenAI-compatible upstreams) --------------------------------------------------


def encode_chat_request(req: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The body to send an OpenAI-compatible upstream for a canonical request."""
    body: dict[str, Any] = {"model": upstream_model, "messages": [_encode_message(m) for m in req.messages]}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    for key in (
        "temperature",
        "top_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "user",
        "metadata",
    ):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.top_k is not None:
        body["top_k"] = req.top_k  # not OpenAI's, but vLLM, llama.cpp and others accept it
    if req.stop:
        body["stop"] = req.stop
    if req.n != 1:
        body["n"] = req.n
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        body.update(_encode_tool_choice(req))
    if req.response_format is not None:
        body["response_format"] = encode_response_format(req.response_format)
    if req.think:
        body["reasoning_effort"] = req.think if isinstance(req.think, str) else "medium"  # think: true
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(req.native.get("openai", {}))
    return body


def _encode_tool_choice(req: ChatRequest) -> dict[str, Any]:
    choice = req.tool_choice
    out: dict[str, Any] = {}
    if choice is None:
        return out
    if req.tools or choice.mode == "none":
        out["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}} if choice.mode == "tool" else choice.mode
        )
    if choice.parallel is not None and req.tools:
        out["parallel_tool_calls"] = choice.parallel
    return out


def encode_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def _encode_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        fn["description"] = tool.description
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _encode_message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role}
    if msg.role == "tool":
        out["tool_call_id"] = msg.tool_call_id
        out["content"] = msg.text()
        return out
    if any(isinstance(p, ImagePart) for p in msg.content):
        out["content"] = [_encode_part(p) for p in msg.content]
    elif msg.role == "assistant" and msg.tool_calls and not msg.content:
        out["content"] = None
    else:
        out["content"] = msg.text()
    if msg.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in msg.tool_calls
        ]
    if msg.name:
        out["name"] = msg.name
    return out


def _encode_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = part.url if part.url is not None else data_url(part.media_type, part.data or "")
    image: dict[str, Any] = {"url": url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}
