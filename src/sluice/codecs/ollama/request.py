"""Ollama native requests (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/embeddings``) ⇄ canonical.

Ollama tool calls carry no ids; decoding gives them stable ids (``call_<message>_<n>``) and matches each
``tool`` message to the most recent unanswered call of its ``tool_name``. ``options`` that have a canonical
field become it; the rest (runtime options such as ``num_ctx``, sampling options other formats lack) and
``keep_alive`` stay in ``native["ollama"]`` for Ollama upstreams (codecs/expressible.py decides what other
upstreams make of them). Ollama streams unless ``stream`` is false.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.canonical import (
    ChatRequest,
    EmbedRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from sluice.codecs import fields as f
from sluice.codecs.images import sniff_media_type
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.errors import InvalidRequest

# Options that tune how Ollama loads and runs a model; meaningless to other upstreams, so left out there.
RUNTIME_OPTIONS = frozenset(
    {
        "num_ctx",
        "num_gpu",
        "num_thread",
        "num_batch",
        "main_gpu",
        "use_mmap",
        "use_mlock",
        "numa",
        "low_vram",
        "vocab_only",
        "num_keep",
    }
)
_MAPPED_OPTIONS = {
    "temperature",
    "top_p",
    "top_k",
    "num_predict",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
}
_ROLES = ("system", "user", "assistant", "tool")
# OpenAI's reasoning_effort levels Ollama has no word for.
_THINK_OUT: dict[str, bool | str] = {"none": False, "minimal": "low"}


def _options(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mapped canonical fields, options kept natively)."""
    options = f.opt_obj(data, "options") or {}
    mapped: dict[str, Any] = {
        "temperature": f.opt_num(options, "temperature", 0, 2, "options.temperature"),
        "top_p": f.opt_num(options, "top_p", 0, 1, "options.top_p"),
        "top_k": f.opt_int(options, "top_k", 0, path="options.top_k"),
        "seed": f.opt_int(options, "seed", path="options.seed"),
        "presence_penalty": f.opt_num(options, "presence_penalty", -2, 2, "options.presence_penalty"),
        "frequency_penalty": f.opt_num(options, "frequency_penalty", -2, 2, "options.frequency_penalty"),
        "stop": f.stop_list(options.get("stop"), "options.stop", max_items=64),
    }
    predict = f.opt_int(options, "num_predict", path="options.num_predict")
    mapped["max_tokens"] = predict if predict is not None and predict > 0 else None
    if mapped["max_tokens"] is not None and mapped["max_tokens"] > f.MAX_TOKENS_CEILING:
        raise f.bad("options.num_predict", f"an integer <= {f.MAX_TOKENS_CEILING}")
    native = {k: v for k, v in options.items() if k not in _MAPPED_OPTIONS}
    return mapped, native


def _native(data: dict[str, Any], options: dict[str, Any], *keys: str) -> dict[str, dict[str, Any]]:
    kept: dict[str, Any] = {k: data[k] for k in ("keep_alive", *keys) if data.get(k) is not None}
    if options:
        kept["options"] = options
    return {"ollama": kept} if kept else {}


def _format(value: Any) -> ResponseFormat | None:
    if value is None or value == "":
        return None
    if value == "json":
        return ResponseFormat("json_object")
    if isinstance(value, dict):
        return ResponseFormat("json_schema", schema=value, name="response")
    raise f.bad("format", "'json' or a JSON schema object")


def _think(value: Any) -> bool | str | None:
    if value is None or value is False:
        return None
    if value is True or value in ("low", "medium", "high"):
        return value  # type: ignore[no-any-return]
    raise f.bad("think", "a boolean or 'low', 'medium', 'high'")


def _images(value: Any, path: str) -> list[Part]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise f.bad(path, "an array of base64 strings")
    return [ImagePart(data=v, media_type=sniff_media_type(v)) for v in value]


def _tools(data: dict[str, Any]) -> list[Tool]:
    tools = []
    for i, raw in enumerate(f.opt_list(data, "tools") or []):
        tool = f.obj(raw, f"tools[{i}]")
        fn = f.obj(tool.get("function"), f"tools[{i}].function")
        parameters = f.opt_obj(fn, "parameters", f"tools[{i}].function.parameters")
        tools.append(
            Tool(
                name=f.req_str(fn, "name", f"tools[{i}].function.name"),
                description=f.opt_str(fn, "description", f"tools[{i}].function.description"),
                parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
            )
        )
    return tools


def check_request(data: dict[str, Any], chat: bool) -> str:
    """The pass-through path's checks (shallow: the fields Sluice relies on); returns the model name."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    _options(data)
    f.opt_bool(data, "stream")
    if not chat:
        f.opt_str(data, "prompt")
        return model
    messages = f.opt_list(data, "messages")
    if messages is None:
        raise f.missing("messages")
    for i, raw in enumerate(messages):
        message = f.obj(raw, f"messages[{i}]")
        if message.get("role") not in _ROLES:
            raise f.bad(f"messages[{i}].role", "one of 'system', 'user', 'assistant', 'tool'")
        f.opt_str(message, "content", f"messages[{i}].content")
    return model


def decode_chat_request(data: dict[str, Any]) -> ChatRequest:
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    raw_messages = f.opt_list(data, "messages")
    if raw_messages is None:
        raise f.missing("messages")
    mapped, options = _options(data)
    stream = f.opt_bool(data, "stream")
    tools = _tools(data)
    return ChatRequest(
        model=model,
        messages=_decode_messages(raw_messages),
        tools=tools,
        response_format=_format(data.get("format")),
        stream=True if stream is None else stream,
        include_usage=True,
        think=_think(data.get("think")),
        logprobs=f.opt_bool(data, "logprobs"),
        top_logprobs=f.opt_int(data, "top_logprobs", 0, 20),
        native=_native(data, options),
        client_format="ollama",
        **mapped,
    )


def _decode_messages(raw_messages: list[Any]) -> list[Message]:
    messages: list[Message] = []
    open_calls: list[ToolCall] = []  # calls not answered yet, oldest first
    for i, raw in enumerate(raw_messages):
        path = f"messages[{i}]"
        m = f.obj(raw, path)
        role = m.get("role")
        if role not in _ROLES:
            raise f.bad(f"{path}.role", "one of 'system', 'user', 'assistant', 'tool'")
        content = m.get("content", "")
        if content is not None and not isinstance(content, str):
            raise f.bad(f"{path}.content", "a string")
        parts: list[Part] = [TextPart(content)] if content else []
        parts += _images(m.get("images"), f"{path}.images")
        message = Message(role, parts)
        if role == "assistant":
            message.tool_calls = _decode_calls(m.get("tool_calls"), f"{path}.tool_calls", i)
            open_calls += message.tool_calls
            thinking = m.get("thinking")
            message.reasoning = thinking if isinstance(thinking, str) and thinking else None
        elif role == "tool":
            name = f.opt_str(m, "tool_name", f"{path}.tool_name") or f.opt_str(m, "name", f"{path}.name")
            match = next((c for c in open_calls if c.name == name), open_calls[0] if open_calls else None)
            if match is not None:
                open_calls.remove(match)
            message.tool_call_id = match.id if match is not None else f"call_unmatched_{i}"
            message.name = name
        messages.append(message)
    return messages


def _decode_calls(value: Any, path: str, message_index: int) -> list[ToolCall]:
    calls = []
    for j, raw in enumerate(value or []):
        fn = f.obj(f.obj(raw, f"{path}[{j}]").get("function"), f"{path}[{j}].function")
        arguments = fn.get("arguments", {})
        if isinstance(arguments, str):
            text = arguments
        elif isinstance(arguments, dict):
            text = orjson.dumps(arguments).decode()
        else:
            raise f.bad(f"{path}[{j}].function.arguments", "an object")
        call_id = raw.get("id") if isinstance(raw.get("id"), str) else f"call_{message_index}_{j}"
        calls.append(ToolCall(call_id, f.req_str(fn, "name", f"{path}[{j}].function.name"), text))
    return calls


def decode_generate_request(data: dict[str, Any]) -> ChatRequest:
    """``/api/generate``: text completion of ``prompt`` (a user message too, for chat-only upstreams)."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    prompt = f.opt_str(data, "prompt") or ""
    mapped, options = _options(data)
    system = f.opt_str(data, "system")
    messages: list[Message] = [Message("system", [TextPart(system)])] if system else []
    images = _images(data.get("images"), "images")
    messages.append(Message("user", [TextPart(prompt), *images]))
    stream = f.opt_bool(data, "stream")
    return ChatRequest(
        model=model,
        messages=messages,
        prompt=prompt if not images else None,
        suffix=f.opt_str(data, "suffix"),
        response_format=_format(data.get("format")),
        stream=True if stream is None else stream,
        include_usage=True,
        think=_think(data.get("think")),
        logprobs=f.opt_bool(data, "logprobs"),
        top_logprobs=f.opt_int(data, "top_logprobs", 0, 20),
        native=_native(data, options, "raw", "template", "context", "system"),
        client_format="ollama",
        **mapped,
    )


def decode_embed_request(data: dict[str, Any], legacy: bool) -> EmbedRequest:
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    if legacy:
        inputs = [f.req_str(data, "prompt")]
    else:
        raw = data.get("input")
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            inputs = list(raw)
        elif raw is None:
            raise f.missing("input")
        else:
            raise f.bad("input", "a string or a non-empty array of strings")
    _, options = _options(data)
    return EmbedRequest(
        model=model,
        inputs=inputs,
        dimensions=f.opt_int(data, "dimensions", 1, 65_536),
        truncate=f.opt_bool(data, "truncate"),
        native=_native(data, options),
    )


# --- canonical → Ollama upstream ---------------------------------------------------------------------------


def _options_out(req: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, key)
        if value is not None:
            options[key] = value
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    if req.stop:
        options["stop"] = req.stop
    options.update(req.native.get("ollama", {}).get("options", {}))
    return options


def _common(req: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "stream": stream}
    options = _options_out(req)
    if options:
        body["options"] = options
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        body["format"] = "json" if fmt.type == "json_object" else (fmt.schema or {})
    if req.think:
        body["think"] = _THINK_OUT.get(req.think, req.think) if isinstance(req.think, str) else True
    native = req.native.get("ollama", {})
    for key, value in native.items():
        if key != "options":
            body[key] = value
    return body


def encode_chat_request(req: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    """The /api/chat body; what Ollama cannot say was refused before (codecs/expressible.py)."""
    body = _common(req, upstream_model, stream)
    body["messages"] = _encode_messages(req.messages)
    if req.tools and not (req.tool_choice is not None and req.tool_choice.mode == "none"):
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.parameters},
            }
            for t in req.tools
        ]
    return body


def encode_generate_request(req: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    body = _common(req, upstream_model, stream)
    body["prompt"] = req.prompt or ""
    if req.suffix is not None:
        body["suffix"] = req.suffix
    system = req.system_text()
    if system and "system" not in body:
        body["system"] = system
    return body


def _encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role, "content": message.text()}
        images = [p.data for p in message.content if isinstance(p, ImagePart) and p.data is not None]
        if images:
            entry["images"] = images
        if message.tool_calls:
            entry["tool_calls"] = []
            for call in message.tool_calls:
                names[call.id] = call.name
                entry["tool_calls"].append({"function": {"name": call.name, "arguments": _arguments(call)}})
        if message.reasoning:
            entry["thinking"] = message.reasoning
        if message.role == "tool":
            entry["tool_name"] = names.get(message.tool_call_id or "", message.name or "")
        out.append(entry)
    return out


def _arguments(call: ToolCall) -> Any:
    if not call.arguments:
        return {}
    try:
        return orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"Tool call {call.id!r} has arguments that are not valid JSON.", param="messages"
        ) from None


def encode_embed_request(req: EmbedRequest, upstream_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "input": req.inputs}
    if req.truncate is not None:
        body["truncate"] = req.truncate
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    body.update(req.native.get("ollama", {}))
    return body
