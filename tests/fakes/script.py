"""What a fake upstream answers: scripted replies, injected faults, and the pure helpers they share.

A `Reply` is format-neutral on purpose: the same `Reply` scripted on FakeOpenAI, FakeAnthropic or FakeOllama
means the same answer (same text, same tool calls, same token counts), so gateway tests can compare what comes
out of a translation against what went in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

FaultKind = Literal[
    "status",
    "refuse",
    "hang",
    "reset_mid_stream",
    "fragments",
    "bad_json",
    "no_terminator",
    "in_band_error",
    "endless",
    "stall",
    "huge",
]
Finish = Literal["stop", "length", "tool_calls"]
JsonObject = dict[str, Any]

_FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
_FINISHES: frozenset[str] = frozenset(get_args(Finish))
_PIECE = 4  # default characters per stream chunk: small enough that every reply streams in several chunks


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the fake model makes."""

    id: str
    name: str
    arguments: JsonObject = field(default_factory=dict)

    def arguments_json(self) -> str:
        """The arguments as the compact JSON string that OpenAI-style formats carry."""
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """One scripted answer, independent of the wire format that will carry it."""

    text: str = "Hello from the fake upstream."
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    prompt_tokens: int = 10
    completion_tokens: int = 6
    cached_tokens: int = 0
    finish: Finish = "stop"
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    delay: float = 0.0
    thinking: str | None = None
    embedding_dim: int = 4
    model: str | None = None
    usage: bool = True
    stop_sequence: str | None = None
    """When set (and the answer ends naturally) Anthropic reports stop_reason "stop_sequence" with this value."""

    def __post_init__(self) -> None:
        if self.finish not in _FINISHES:
            raise ValueError(f"Reply.finish must be one of {sorted(_FINISHES)}, not {self.finish!r}")
        if self.chunks is not None and "".join(self.chunks) != self.text:
            # A stream and a non-stream answer must say the same thing, or translation tests prove nothing.
            raise ValueError("Reply.chunks must join to exactly Reply.text")
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "chunk_delay", "delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError("Reply.cached_tokens cannot exceed Reply.prompt_tokens")
        if self.embedding_dim < 1:
            raise ValueError("Reply.embedding_dim must be at least 1")

    @property
    def effective_finish(self) -> Finish:
        """The finish actually reported: an answer with tool calls that stopped naturally stopped for them."""
        if self.tool_calls and self.finish == "stop":
            return "tool_calls"
        return self.finish

    def pieces(self) -> list[str]:
        """The text as it is split across stream chunks."""
        if self.chunks is not None:
            return [piece for piece in self.chunks if piece]
        return split_text(self.text, _PIECE)

    def thinking_pieces(self) -> list[str]:
        """The reasoning text as it is split across stream chunks."""
        return split_text(self.thinking or "", _PIECE)


@dataclass(frozen=True)
class Fault:
    """A misbehaviour applied to the next generation request (see the package docstring for each kind)."""

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    seconds: float = 60.0
    after_chunks: int = 0
    interval: float = 0.01
    size: int = 1_000_000
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers for a "status" fault (e.g. OpenAI's x-ratelimit-* headers)."""

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        if not 400 <= self.status <= 599:
            raise ValueError("Fault.status must be an HTTP error status (400-599)")
        if self.seconds < 0 or self.after_chunks < 0 or self.interval <= 0 or self.size < 0:
            raise ValueError("Fault.seconds, after_chunks and size must be >= 0, interval > 0")

    def message_or(self, default: str) -> str:
        """The fault's message, or the format's usual wording when none was scripted."""
        return self.message if self.message is not None else default


def split_text(text: str, size: int) -> list[str]:
    """Cut `text` into consecutive pieces of at most `size` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def new_id(prefix: str) -> str:
    """A fresh identifier in the vendor's style, e.g. ``chatcmpl-…`` or ``msg_…``."""
    return prefix + uuid.uuid4().hex[:24]


def embedding_vector(key: str, dim: int) -> list[float]:
    """A deterministic vector in [-1, 1] for `key`.

    Every value is exactly representable as float32, so the float and the base64 (float32) encodings of one
    input decode to identical numbers.
    """
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{block}:{key}".encode()).digest()
        for (word,) in struct.iter_unpack("<I", digest):
            scaled = word / 0xFFFFFFFF * 2.0 - 1.0
            values.append(struct.unpack("<f", struct.pack("<f", scaled))[0])
        block += 1
    return values[:dim]


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the little-endian float32 bytes of the vector."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_keys(value: object) -> list[str]:
    """The inputs of an embeddings request, one hashable key each (strings, token lists, or lists of either)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return [json.dumps(value)]  # one tokenised input
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return [json.dumps(value)]
