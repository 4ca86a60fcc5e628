"""OpenAI legacy ``/v1/completions`` and ``/v1/embeddings`` requests ⇄ canonical requests."""

from __future__ import annotations

from typing import Any

from sluice.canonical import ChatRequest, EmbedRequest
from sluice.codecs import fields as f
from sluice.codecs.openai.chat_request import refuse_upstream_fields
from sluice.errors import Unsupported

MAX_EMBED_INPUTS = 2048

_COMPLETION_KNOWN = frozenset(
    {
        "model",
        "prompt",
        "suffix",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "stream",
        "stream_options",
        "user",
        "logprobs",
    }
)


def decode_completion_request(data: dict[str, Any]) -> ChatRequest:
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    prompt = data.get("prompt")
    if prompt is None:
        raise f.missing("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        if isinstance(prompt, list):
            # Several prompts, or token arrays, only an OpenAI-compatible upstream can take; the surface passes
            # them through unchanged there and this error reaches only callers of other upstream kinds.
            raise Unsupported(
                "Only a single string 'prompt' can be translated for this model's upstream.", param="prompt"
            )
        raise f.bad("prompt", "a string or an array of strings")
    stream_options = f.opt_obj(data, "stream_options") or {}
    native = {k: v for k, v in data.items() if k not in _COMPLETION_KNOWN}
    # Legacy logprobs is one number, the alternatives per token (0: the chosen token's only).
    logprobs = f.opt_int(data, "logprobs", 0, 5)
    return ChatRequest(
        model=model,
        prompt=prompt,
        suffix=f.opt_str(data, "suffix"),
        max_tokens=f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING) or 16,
        temperature=f.opt_num(data, "temperature", 0, 2),
        top_p=f.opt_num(data, "top_p", 0, 1),
        top_k=f.opt_int(data, "top_k", 0),
        stop=f.stop_list(data.get("stop"), "stop", max_items=4),
        n=f.opt_int(data, "n", 1, f.MAX_N) or 1,
        seed=f.opt_int(data, "seed"),
        presence_penalty=f.opt_num(data, "presence_penalty", -2, 2),
        frequency_penalty=f.opt_num(data, "frequency_penalty", -2, 2),
        logprobs=True if logprobs is not None else None,
        top_logprobs=logprobs,
        stream=bool(f.opt_bool(data, "stream")),
        include_usage=bool(f.opt_bool(stream_options, "include_usage", "stream_options.include_usage")),
        user=f.opt_str(data, "user"),
        native={"openai": native} if native else {},
    )


def validate_completion_request(data: dict[str, Any]) -> str:
    """The checks pass-through needs (the upstream validates the rest); returns the model name."""
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    if data.get("prompt") is None:
        raise f.missing("prompt")
    f.opt_int(data, "max_tokens", 1, f.MAX_TOKENS_CEILING)
    f.opt_int(data, "n", 1, f.MAX_N)
    f.opt_bool(data, "stream")
    return model


def encode_completion_request(req: ChatRequest, upstream_model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "prompt": req.prompt or ""}
    for key in (
        "suffix",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "user",
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
    if req.logprobs:
        body["logprobs"] = req.top_logprobs or 0
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(req.native.get("openai", {}))
    return body


def decode_embedding_request(data: dict[str, Any]) -> EmbedRequest:
    refuse_upstream_fields(data)
    model = f.req_str(data, "model")
    raw = data.get("input")
    if raw is None:
        raise f.missing("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        inputs = list(raw)
    elif isinstance(raw, list):
        raise Unsupported("Token-array 'input' can only be sent to an OpenAI-compatible upstream.", param="input")
    else:
        raise f.bad("input", "a string or an array of strings")
    if not inputs:
        raise f.bad("input", "a non-empty array")
    if len(inputs) > MAX_EMBED_INPUTS:
        raise f.bad("input", f"at most {MAX_EMBED_INPUTS} items")
    fmt = f.opt_str(data, "encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise f.bad("encoding_format", "'float' or 'base64'")
    return EmbedRequest(
        model=model,
        inputs=inputs,
        dimensions=f.opt_int(data, "dimensions", 1, 65_536),
        encoding_format=fmt,  # type: ignore[arg-type]
        user=f.opt_str(data, "user"),
    )


def encode_embedding_request(req: EmbedRequest, upstream_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "input": req.inputs, "encoding_format": "float"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.user is not None:
        body["user"] = req.user
    return body
