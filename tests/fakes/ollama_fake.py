"""A fake Ollama server: chat and generate (NDJSON streams by default), embeddings and model management reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from aiohttp import web

from .delivery import Answer, Frame, JsonAnswer, StreamPlan, encode_json
from .script import JsonObject, Reply, embedding_keys, embedding_vector
from .server import FakeUpstream

_NDJSON = "application/x-ndjson"
_JSON = "application/json; charset=utf-8"
_MODIFIED_AT = "2025-01-01T00:00:00.000000000Z"
_MS = 1_000_000  # nanoseconds per millisecond: Ollama reports durations in integer nanoseconds


def _line(payload: JsonObject) -> bytes:
    return encode_json(payload) + b"\n"


def _error_frame(message: str | None) -> bytes:
    return _line({"error": message or "an error was encountered while running the model"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stats(reply: Reply) -> JsonObject:
    """The final line's timing and token fields (counts left out when the reply has no usage)."""
    prompt_eval, evaluation, load = reply.prompt_tokens * _MS // 10, reply.completion_tokens * 10 * _MS, 2 * _MS
    stats: JsonObject = {
        "done": True,
        "done_reason": "length" if reply.effective_finish == "length" else "stop",
        "total_duration": load + prompt_eval + evaluation + _MS,
        "load_duration": load,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": prompt_eval,
        "eval_count": reply.completion_tokens,
        "eval_duration": evaluation,
    }
    if not reply.usage:
        del stats["prompt_eval_count"], stats["eval_count"]
    return stats


def _tool_calls(reply: Reply) -> list[JsonObject]:
    return [
        {"id": call.id, "function": {"index": index, "name": call.name, "arguments": call.arguments}}
        for index, call in enumerate(reply.tool_calls)
    ]


def _plan(
    head: JsonObject, contents: list[JsonObject], final: JsonObject, wrap: Callable[[str], JsonObject]
) -> StreamPlan:
    frames = [Frame(_line({**head, **content, "done": False})) for content in contents]
    frames.append(Frame(_line({**head, **final}), "end"))
    return StreamPlan(
        content_type=_NDJSON,
        frames=frames,
        piece=lambda text: _line({**head, **wrap(text), "done": False}),
        error=_error_frame,
        bad=encode_json(head)[:-1] + b',"message":{"role":"assistant","content":\n',
    )


# ----- /api/chat ----------------------------------------------------------------------------------------------


def _assistant(content: str, **extra: object) -> JsonObject:
    return {"message": {"role": "assistant", "content": content, **extra}}


def chat_response(reply: Reply, body: JsonObject) -> JsonObject:
    """A non-streamed /api/chat answer: the whole message plus the final statistics."""
    extra: JsonObject = {}
    if reply.thinking is not None:
        extra["thinking"] = reply.thinking
    if reply.tool_calls:
        extra["tool_calls"] = _tool_calls(reply)
    head = {"model": reply.model or str(body.get("model") or ""), "created_at": _now()}
    return {**head, **_assistant(reply.text, **extra), **_stats(reply)}


def chat_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    """An /api/chat NDJSON stream: thinking, text, then tool calls, then the ``done: true`` line."""
    head = {"model": reply.model or str(body.get("model") or ""), "created_at": _now()}
    contents = [_assistant("", thinking=piece) for piece in reply.thinking_pieces()]
    contents += [_assistant(piece) for piece in reply.pieces()]
    if reply.tool_calls:
        contents.append(_assistant("", tool_calls=_tool_calls(reply)))
    return _plan(head, contents, {**_assistant(""), **_stats(reply)}, _assistant)


# ----- /api/generate ------------------------------------------------------------------------------------------


def _response(text: str, **extra: object) -> JsonObject:
    return {"response": text, **extra}


def generate_response(reply: Reply, body: JsonObject) -> JsonObject:
    """A non-streamed /api/generate answer."""
    head = {"model": reply.model or str(body.get("model") or ""), "created_at": _now()}
    extra = {"thinking": reply.thinking} if reply.thinking is not None else {}
    return {**head, **_response(reply.text, **extra), **_stats(reply), "context": [1, 2, 3]}


def generate_stream(reply: Reply, body: JsonObject) -> StreamPlan:
    """An /api/generate NDJSON stream of ``response`` pieces, then the ``done: true`` line."""
    head = {"model": reply.model or str(body.get("model") or ""), "created_at": _now()}
    contents = [_response("", thinking=piece) for piece in reply.thinking_pieces()]
    contents += [_response(piece) for piece in reply.pieces()]
    return _plan(head, contents, {**_response(""), **_stats(reply), "context": [1, 2, 3]}, _response)


# ----- embeddings ---------------------------------------------------------------------------------------------


def embed_response(reply: Reply, body: JsonObject) -> JsonObject:
    """/api/embed: one vector per input."""
    dimensions = body.get("dimensions")
    dim = dimensions if isinstance(dimensions, int) and dimensions > 0 else reply.embedding_dim
    vectors = [embedding_vector(key, dim) for key in embedding_keys(body.get("input", ""))]
    result: JsonObject = {
        "model": reply.model or str(body.get("model") or ""),
        "embeddings": vectors,
        "total_duration": 3 * _MS,
        "load_duration": _MS,
    }
    if reply.usage:
        result["prompt_eval_count"] = reply.prompt_tokens
    return result


def legacy_embedding(reply: Reply, body: JsonObject) -> JsonObject:
    """/api/embeddings (deprecated): one vector for one ``prompt``."""
    return {"embedding": embedding_vector(str(body.get("prompt", "")), reply.embedding_dim)}


# ----- the server ---------------------------------------------------------------------------------------------


def _streams(body: JsonObject) -> bool:
    return body.get("stream") is not False  # Ollama streams unless told not to


def _details(name: str) -> JsonObject:
    family = name.split(":")[0].split("-")[0]
    tag = name.split(":")[1] if ":" in name else "latest"
    size = tag.upper() if tag[:-1].isdigit() and tag.endswith("b") else "8.0B"
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": size,
        "quantization_level": "Q4_K_M",
    }


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class FakeOllama(FakeUpstream):
    """A fake Ollama server. Point the SDK's ``host`` at `url`."""

    default_models: ClassVar[tuple[str, ...]] = ("llama-fake:latest", "qwen-fake:7b")
    generation_paths: ClassVar[frozenset[str]] = frozenset(
        {"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"}
    )

    def __init__(
        self,
        *,
        reply: Reply | None = None,
        api_key: str | None = None,
        models: list[str] | None = None,
        version: str = "0.12.0",
    ) -> None:
        super().__init__(reply=reply, api_key=api_key, models=models)
        self.version = version

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/chat", self._chat),
            web.post("/api/generate", self._generate),
            web.post("/api/embed", self._embed),
            web.post("/api/embeddings", self._embeddings),
            web.get("/api/tags", self._tags),
            web.post("/api/show", self._show),
            web.get("/api/ps", self._ps),
            web.get("/api/version", self._version),
        ]

    def _error_body(self, status: int, message: str) -> JsonObject:
        return {"error": message}

    def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        # Plain Ollama has no authentication; a key models the proxies and hosted endpoints that add one.
        if self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return self.error_response(401, "unauthorized")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)

        def render(reply: Reply) -> Answer:
            return chat_stream(reply, body) if _streams(body) else JsonAnswer(chat_response(reply, body), _JSON)

        return await self.generate(request, render)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)

        def render(reply: Reply) -> Answer:
            return generate_stream(reply, body) if _streams(body) else JsonAnswer(generate_response(reply, body), _JSON)

        return await self.generate(request, render)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)
        return await self.generate(request, lambda reply: JsonAnswer(embed_response(reply, body), _JSON))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)
        return await self.generate(request, lambda reply: JsonAnswer(legacy_embedding(reply, body), _JSON))

    def _listing(self, name: str) -> JsonObject:
        return {"name": name, "model": name, "size": 4_920_000_000, "digest": _digest(name), "details": _details(name)}

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        return self.json_response({"models": [{**self._listing(n), "modified_at": _MODIFIED_AT} for n in self.models]})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        loaded = {"expires_at": "2099-01-01T00:00:00Z", "size_vram": 4_920_000_000, "context_length": 8192}
        return self.json_response({"models": [{**self._listing(n), **loaded} for n in self.models]})

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return self.json_response({"version": self.version})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body = self.body_of(request)
        name = str(body.get("model") or body.get("name") or "")
        if name not in self.models:
            return self.error_response(404, f"model '{name}' not found")
        details = _details(name)
        family = details["family"]
        return self.json_response(
            {
                "modelfile": f"# Modelfile generated by the fake\nFROM {name}\n",
                "parameters": 'stop "<|eot_id|>"\ntemperature 0.7',
                "template": "{{ .Prompt }}",
                "details": details,
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": 8_000_000_000,
                    f"{family}.context_length": 8192,
                    f"{family}.embedding_length": 4096,
                },
                "capabilities": ["completion", "tools", "thinking"],
                "modified_at": _MODIFIED_AT,
            }
        )
