"""The built-in ``mock`` provider: deterministic answers with no network, for demos, tests and benchmarks.

The reply is derived from a hash of the prompt, so the same request always gets the same answer. Latency before
the first token, token rate and failures are configurable (``providers[].mock``). When tools are offered and the
conversation ends with a user message, the mock calls the named (or first) tool with arguments valid for its
``parameters`` (``{"input": <the last message>}`` when they declare no properties), so tool round trips and strict
tools can be tried. It honours ``n``, ``max_tokens``, stop sequences, JSON mode (``{"answer": ...}``), JSON-schema
formats (an instance of the schema, from :mod:`sluice.providers.schema_instances`) and thinking (a short reasoning
text first); sampling settings and seeds change nothing in a deterministic text. What it cannot do (log
probabilities, suffixes, other formats' own fields) is refused like any upstream's (see codecs/expressible.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from sluice.accounting.estimate import estimate_prompt_tokens, estimate_text_tokens
from sluice.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbedRequest,
    EmbedResponse,
    Finish,
    FinishReason,
    Message,
    ReasoningDelta,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from sluice.codecs.expressible import MOCK, Capabilities
from sluice.config import ProviderConfig
from sluice.errors import Overloaded, UpstreamError
from sluice.providers.base import Provider, Target
from sluice.providers.schema_instances import instance_of

_SENTENCE = (
    "the quick brown fox jumps over a lazy dog while sluice gates open to let the river flow "
    "steadily toward calm water where boats wait their turn in fair order"
)
_WORDS = tuple(_SENTENCE.split(" "))

DEFAULT_MODELS = ["mock-1"]
EMBED_DIM = 8
REASONING_TOKENS = 6
JSON_PIECE = 4  # characters of a JSON-schema answer per streamed piece (one token each, as words are)


class MockProvider(Provider):
    kind: ClassVar[str] = "mock"
    capabilities: ClassVar[Capabilities] = MOCK

    def __init__(self, config: ProviderConfig, models: list[str] | None = None) -> None:
        super().__init__(config)
        self.options = config.mock
        self.models = models or list(DEFAULT_MODELS)

    def _maybe_fail(self) -> None:
        if self.options.fail_rate and random.random() < self.options.fail_rate:
            raise Overloaded("The mock upstream is configured to fail this request.", code="mock_failure")

    def _plan(self, req: ChatRequest, choice: int) -> _Plan:
        """What this request's answer consists of: reasoning and text pieces (one token each), or a tool call."""
        last = req.messages[-1] if req.messages else None
        tools_allowed = req.tool_choice is None or req.tool_choice.mode != "none"
        seed_text = (req.prompt or "") + "|".join(m.text() for m in req.messages) + f"#{choice}"
        start = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:4], "big")
        reasoning = _words(start + 7, REASONING_TOKENS) if req.think and req.think != "none" else []
        if req.tools and tools_allowed and last is not None and last.role == "user":
            tool = next((t for t in req.tools if req.tool_choice and t.name == req.tool_choice.name), req.tools[0])
            call = ToolCall(f"call_mock_{choice}", tool.name, orjson.dumps(_arguments(tool, last, start)).decode())
            return _Plan(reasoning, [], [call], "tool_calls")
        fmt = req.response_format
        if fmt is not None and fmt.type == "json_schema":
            text = orjson.dumps(instance_of(fmt.schema or {}, start)).decode()
            words = [text[i : i + JSON_PIECE] for i in range(0, len(text), JSON_PIECE)]
        elif self.options.reply is not None:
            words = [w + " " for w in self.options.reply.split(" ")]
            words[-1] = words[-1].rstrip(" ")
        else:
            words = _words(start, self.options.reply_tokens)
        reason: FinishReason = "stop"
        if req.max_tokens is not None and req.max_tokens < len(words):
            words, reason = words[: req.max_tokens], "length"
        if req.stop:
            words, stopped = _cut_at_stop(words, req.stop)
            reason = "stop" if stopped else reason
        if fmt is not None and fmt.type == "json_object":
            # A JSON object answer, as JSON mode promises: the text under "answer", each word still one token.
            words = ['{"answer": "', *(orjson.dumps(w).decode()[1:-1] for w in words), '"}']
        return _Plan(reasoning, words, [], reason)

    def _usage(self, req: ChatRequest, completion: int) -> Usage:
        return Usage(prompt_tokens=estimate_prompt_tokens(req), completion_tokens=completion)

    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse:
        self.accept(req)
        self._maybe_fail()
        choices = []
        completion = 0
        for i in range(req.n):
            plan = self._plan(req, i)
            completion += plan.tokens
            text = "".join(plan.words)
            message = Message(
                "assistant",
                [TextPart(text)] if text else [],
                tool_calls=plan.calls,
                reasoning="".join(plan.reasoning) or None,
            )
            choices.append(Choice(i, message, plan.reason))
        await self._sleep_for(completion)
        return ChatResponse(_response_id(), target.model, int(time.time()), choices, self._usage(req, completion))

    async def _sleep_for(self, tokens: int) -> None:
        delay = self.options.latency_ms / 1000
        if self.options.tokens_per_second:
            delay += tokens / self.options.tokens_per_second
        if delay:
            await asyncio.sleep(delay)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        self.accept(req)
        self._maybe_fail()
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)
        yield StreamStart(_response_id(), target.model, int(time.time()))
        gap = 1 / self.options.tokens_per_second if self.options.tokens_per_second else 0.0
        completion = 0
        for i in range(req.n):
            plan = self._plan(req, i)
            for piece in plan.reasoning:
                if gap:
                    await asyncio.sleep(gap)
                completion += 1
                yield ReasoningDelta(piece, i)
            for position, word in enumerate(plan.words):
                if gap:
                    await asyncio.sleep(gap)
                if self.options.fail_mid_stream and position == len(plan.words) // 2:
                    raise UpstreamError("The mock upstream is configured to fail mid-stream.")
                completion += 1
                yield TextDelta(word, i)
            for index, call in enumerate(plan.calls):
                completion += estimate_text_tokens(call.arguments)
                yield ToolCallDelta(index, "", call.id, call.name, i)
                yield ToolCallDelta(index, call.arguments, choice=i)
            yield Finish(plan.reason, i)
        yield UsageUpdate(self._usage(req, completion))

    async def embed(self, req: EmbedRequest, target: Target) -> EmbedResponse:
        self._maybe_fail()
        dim = req.dimensions or EMBED_DIM
        vectors = [_vector(text, dim) for text in req.inputs]
        usage = Usage(prompt_tokens=sum(max(1, estimate_text_tokens(t)) for t in req.inputs))
        return EmbedResponse(target.model, vectors, usage)

    async def list_models(self) -> list[str]:
        return list(self.models)

    async def health(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Plan:
    reasoning: list[str]
    words: list[str]
    calls: list[ToolCall]
    reason: FinishReason

    @property
    def tokens(self) -> int:
        return len(self.reasoning) + len(self.words) + sum(estimate_text_tokens(c.arguments) for c in self.calls)


def _arguments(tool: Tool, last: Message, seed: int) -> Any:
    """Arguments valid for the tool's parameters; the last message under ``input`` when they name no property."""
    parameters = tool.parameters
    if not parameters.get("properties") and parameters.get("additionalProperties", True) is not False:
        return {"input": last.text()[:64]}
    return instance_of(parameters, seed)


def _words(start: int, count: int) -> list[str]:
    return [_WORDS[(start + i) % len(_WORDS)] + (" " if i < count - 1 else "") for i in range(count)]


def _cut_at_stop(words: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """The words before the first stop sequence (the last one cut short where it starts), and whether one was hit."""
    text = "".join(words)
    hits = [text.find(stop) for stop in stops if stop and stop in text]
    if not hits:
        return words, False
    cut = min(hits)
    kept: list[str] = []
    length = 0
    for word in words:
        if length + len(word) > cut:
            if cut > length:
                kept.append(word[: cut - length])
            break
        kept.append(word)
        length += len(word)
    return kept, True


def _response_id() -> str:
    return "mock-" + random.randbytes(12).hex()


def _vector(text: str, dim: int) -> list[float]:
    """A deterministic unit-range vector from the text's hash (repeated hashing for long vectors)."""
    values: list[float] = []
    counter = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(x / 2**31 - 1 for x in struct.unpack(">8I", digest))
        counter += 1
    return values[:dim]
