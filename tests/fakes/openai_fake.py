"""A fake OpenAI API: chat completions, legacy completions, embeddings and models, in OpenAI's wire format."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from aiohttp import web

from .delivery import Answer, Frame, JsonAnswer, StreamPlan, encode_json
from .openai_responses import input_tokens, response_object, response_stream
from .script import JsonObject, Reply, embedding_base64, embedding_keys, embedding_vector, new_id, split_text
from .server import FakeUpstream

_CREATED = 1_700_000_000  # a fixed "created" for models: the real values are fixed dates too
_ARG_PIECE = 8  # characters of tool-call arguments per streamed delta
_DONE = b"data: [DONE]\n\n"
_SSE = "text/event-stream; charset=utf-8"


def _sse(payload: object) -> bytes:
    return b"data: " + encode_json(payload) + b"\n\n"


def _usage(reply: Reply) -> JsonObject:
    usage: JsonObject = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
    if reply.cached_tokens > 0:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return usage


def _choice_count(body: JsonObject) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def _wants_stream_usage(body: JsonObject, reply: Reply) -> bool:
    options = body.get("stream_options")
    return reply.usage and isinstance(options, dict) and options.get("include_usage") is True


def _error_frame(message: str | None) -> bytes:
    error = {"message": message or "The server had an error while processing your request.", "type": "server_error"}
    return _sse({"error": {**error, "param": None, "code": None}})


class _Envelope:
    """The fields every object of one answer shares (id, created, model) and its stream framing."""

    def __init__(self, obj: str, id_prefix: str, reply: Reply, body: JsonObject) -> None:
        self.obj = obj
        self.id = new_id(id_prefix)
        self.created = int(time.time())
        self.model = reply.model or str(body.get("model") or "gpt-fake")
        self.stream_usage = _wants_stream_usage(body, reply)

    def wrap(self, choices: list[JsonObject]) -> JsonObject:
        chunk: JsonObject = {
            "id": self.id,
            "object": self.obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if self.stream_usage:
            chunk["usage"] = None  # OpenAI marks every chunk but the last with usage: null when usage was asked
        return chunk

    def closing(self, reply: Reply, finishes: list[JsonObject]) -> list[Frame]:
        frames = [Frame(_sse(self.wrap([choice])), "end") for choice in finishes]
        if self.stream_usage:
            frames.append(Frame(_sse({**self.wrap([]), "usage": _usage(reply)}), "end"))
        frames.append(Frame(_DONE, "end"))
        return frames

    def bad_frame(self) -> bytes:
        return b'data: {"id":"' + self.id.encode() + b'","object":"' + self.obj.encode() + b'","choices":[{\n\n'


# ----- chat completions ---------------------------------------------------------------------------------------


def _chat_message(reply: Reply) -> JsonObject:
    message: JsonObject = {"role": "assistant", "content": reply.text or None, "refusal": None, "annotations": []}
    if reply.thinking is not None:
        message["reasoning_content"] = reply.thinking
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json()}}
            for call in reply.tool_calls
        ]
    return message


_LOGPROB = -0.25  # every token's log probability in a fake answer


def chat_logprobs(reply: Reply, body: JsonObject) -> JsonObject | None:
    """Chat logprobs (``{"content": [...]}``, one entry per text piece) when the request asked for them."""
    if body.get("logprobs") is not True:
        return None
    top = body.get("top_logprobs") if isinstance(body.get("top_logprobs"), int) else 0
    entries = [
        {
            "token": piece,
            "logprob": _LOGPROB,
            "bytes": list(piece.encode()),
            "top_logprobs": [{"token": piece, "logprob": _LOGPROB, "bytes": list(piece.encode())}][:top],
        }
        for piece in reply.pieces()
    ]
    return {"content": entries, "refusal": None}


def text_logprobs(reply: Reply, body: JsonObject) -> JsonObject | None:
    """Legacy completion logprobs (tokens, token_logprobs, top_logprobs, text_offset) when asked for."""
    if not isinstance(body.get("logprobs"), int) or isinstance(body.get("logprobs"), bool):
        return None
    pieces = reply.pieces()
    offsets = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    return {
        "tokens": pieces,
        "token_logprobs": [_LOGPROB] * len(pieces),
        "top_logprobs": [{piece: _LOGPROB} for piece in pieces],
        "text_offset": offsets,
    }


def chat_completion(reply: Reply, body: JsonObject) -> JsonObject:
    """A non-streamed ``chat.completion`` object."""
    envelope = _Envelope("chat.completion", "chatcmpl-", reply, body)
    logprobs = chat_logprobs(reply, body)
    choices = [
        {"index": i, "message": _chat_message(reply), "logprobs": logprobs, "finish_reason": reply.effective_finish}
        for i in range(_choice_count(body))
    ]
    completion: JsonObject = {**envelope.wrap(choices), "service_tier": "default"}
    completion.pop("usage", None)
    if reply.usage:
        completion["usage"] = _usage(reply)
    return completion


def _chat_deltas(reply: Reply) -> list[JsonObject]:
    """The content deltas of one choice, in order: reasoning, text, then each tool call."""
    deltas: list[JsonObject] = [{"reasoning_content": piece} for piece in reply.thinking_pieces()]
    deltas += [{"content": piece} for piece in reply.pieces()]
    for index, call in enumerate(reply.tool_calls):
        opening = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        deltas.append({"tool_calls": [opening]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            for fragment in split_text(call.arguments_json(), _ARG_PIECE)
        ]
    return deltas


def chat_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    """A ``chat.completion.chunk`` SSE stream, ending in ``data: [DONE]``."""
    env = _Envelope("chat.completion.chunk", "chatcmpl-", reply, body)
    indexes = range(_choice_count(body))

    def choice(index: int, delta: JsonObject, finish: str | None = None) -> JsonObject:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    frames = [
        Frame(_sse(env.wrap([choice(i, {"role": "assistant", "content": "", "refusal": None})])), "head")
        for i in indexes
    ]
    frames += [Frame(_sse(env.wrap([choice(i, delta)]))) for i in indexes for delta in _chat_deltas(reply)]
    frames += env.closing(reply, [choice(i, {}, reply.effective_finish) for i in indexes])
    return StreamPlan(
        content_type=_SSE,
        frames=frames,
        piece=lambda text: _sse(env.wrap([choice(0, {"content": text})])),
        error=_error_frame,
        bad=env.bad_frame(),
    )


# ----- legacy completions -------------------------------------------------------------------------------------


def _legacy_finish(reply: Reply) -> str:
    return "length" if reply.effective_finish == "length" else "stop"  # no tool calls in legacy completions


def text_completion(reply: Reply, body: JsonObject) -> JsonObject:
    """A non-streamed legacy ``text_completion`` object."""
    env = _Envelope("text_completion", "cmpl-", reply, body)
    finish = _legacy_finish(reply)
    logprobs = text_logprobs(reply, body)
    completion = env.wrap(
        [
            {"text": reply.text, "index": i, "logprobs": logprobs, "finish_reason": finish}
            for i in range(_choice_count(body))
        ]
    )
    completion.pop("usage", None)
    if reply.usage:
        completion["usage"] = _usage(reply)
    return completion


def text_completion_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    """A legacy completions SSE stream: the same object shape per chunk, ending in ``data: [DONE]``."""
    env = _Envelope("text_completion", "cmpl-", reply, body)
    indexes = range(_choice_count(body))

    def choice(index: int, text: str, finish: str | None = None) -> JsonObject:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

    frames = [Frame(_sse(env.wrap([choice(i, piece)]))) for i in indexes for piece in reply.pieces()]
    frames += env.closing(reply, [choice(i, "", _legacy_finish(reply)) for i in indexes])
    return StreamPlan(
        content_type=_SSE,
        frames=frames,
        piece=lambda text: _sse(env.wrap([choice(0, text)])),
        error=_error_frame,
        bad=env.bad_frame(),
    )


# ----- embeddings ---------------------------------------------------------------------------------------------


def embeddings(reply: Reply, body: JsonObject) -> JsonObject:
    """A ``list`` of embeddings, as floats or (``encoding_format: "base64"``) little-endian float32."""
    dimensions = body.get("dimensions")
    dim = dimensions if isinstance(dimensions, int) and dimensions > 0 else reply.embedding_dim
    as_base64 = body.get("encoding_format") == "base64"
    data: list[JsonObject] = []
    for index, key in enumerate(embedding_keys(body.get("input", ""))):
        vector = embedding_vector(key, dim)
        data.append(
            {"object": "embedding", "index": index, "embedding": embedding_base64(vector) if as_base64 else vector}
        )
    result: JsonObject = {"object": "list", "data": data, "model": reply.model or str(body.get("model") or "")}
    if reply.usage:
        result["usage"] = {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens}
    return result


# ----- errors and dispatch ------------------------------------------------------------------------------------


def _error_kind(status: int) -> tuple[str, str | None]:
    """OpenAI's error ``type`` and ``code`` for a status."""
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 404:
        return "invalid_request_error", "unknown_url"
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


# ----- the server ---------------------------------------------------------------------------------------------


def _either(
    complete: Callable[[Reply, JsonObject], JsonObject],
    stream: Callable[[Reply, JsonObject], StreamPlan],
    body: JsonObject,
) -> Callable[[Reply], Answer]:
    if body.get("stream") is True:
        return lambda reply: stream(reply, body)
    return lambda reply: JsonAnswer(complete(reply, body))


_GENERATION_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/responses")


class FakeOpenAI(FakeUpstream):
    """A fake OpenAI API under ``/v1``. Point SDKs at `base_url`.

    The same API can live under another `prefix`, as OpenAI-compatible services put it (Azure's
    ``/openai/deployments/<name>`` or ``/openai/v1``, Gemini's ``/v1beta/openai``), and take its key the Azure way
    (``auth="api-key"``: an ``api-key`` header instead of a Bearer token).
    """

    default_models: ClassVar[tuple[str, ...]] = ("gpt-fake", "gpt-fake-mini")
    generation_paths: ClassVar[frozenset[str]] = frozenset(f"/v1{e}" for e in _GENERATION_ENDPOINTS)

    def __init__(
        self,
        *,
        reply: Reply | None = None,
        api_key: str | None = None,
        models: list[str] | None = None,
        prefix: str = "/v1",
        auth: Literal["bearer", "api-key"] = "bearer",
    ) -> None:
        super().__init__(reply=reply, api_key=api_key, models=models)
        self.prefix = prefix.rstrip("/")
        self.auth = auth

    @property
    def base_url(self) -> str:
        """The URL the OpenAI SDK expects, with the prefix (``/v1``)."""
        return self.url + self.prefix

    def _routes(self) -> list[web.RouteDef]:
        p = self.prefix
        return [
            web.post(f"{p}/chat/completions", self._chat),
            web.post(f"{p}/completions", self._completions),
            web.post(f"{p}/embeddings", self._embeddings),
            web.post(f"{p}/responses", self._responses),
            web.post(f"{p}/responses/input_tokens", self._input_tokens),
            web.get(f"{p}/models", self._list_models),
            web.get(f"{p}/models/{{model:.+}}", self._get_model),
        ]

    def _is_generation(self, path: str) -> bool:
        return path in {self.prefix + e for e in _GENERATION_ENDPOINTS}

    def _error_body(self, status: int, message: str) -> JsonObject:
        kind, code = _error_kind(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        if self.api_key is None:
            return None
        if self.auth == "api-key" and request.headers.get("api-key") == self.api_key:
            return None
        if self.auth == "bearer" and request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return self.error_response(401, "Incorrect API key provided. You can find your API key in your dashboard.")

    def _response_headers(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_"), "openai-processing-ms": "1"}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self.generate(request, _either(chat_completion, chat_stream, self.body_of(request)))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self.generate(request, _either(text_completion, text_completion_stream, self.body_of(request)))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self.generate(request, _either(response_object, response_stream, self.body_of(request)))

    async def _input_tokens(self, request: web.Request) -> web.StreamResponse:
        return self.json_response(input_tokens(self.reply))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)
        return await self.generate(request, lambda reply: JsonAnswer(embeddings(reply, body)))

    def _model(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "sluice-fake"}

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        return self.json_response({"object": "list", "data": [self._model(name) for name in self.models]})

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["model"]
        if model_id not in self.models:
            body = self._error_body(404, f"The model '{model_id}' does not exist")
            body["error"].update(param="model", code="model_not_found")
            return web.Response(status=404, body=encode_json(body), content_type="application/json")
        return self.json_response(self._model(model_id))
