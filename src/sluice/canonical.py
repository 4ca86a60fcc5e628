"""The canonical request, response and stream-event types every format translates through.

A surface decodes its client's wire format into these types; a provider encodes them into its upstream's wire
format and decodes the upstream's answer back into them. When client and upstream speak the same format the
request bypasses this model entirely (pass-through), so these types sit only on the translation path.

Finish reasons use OpenAI's vocabulary (``stop``, ``length``, ``tool_calls``, ``content_filter``); each codec maps
its own to and from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image by URL, or inline as base64 ``data`` with its ``media_type``."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None


Part = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # the arguments as JSON text, exactly as the model produced them


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for role="tool": which call this answers
    name: str | None = None
    is_error: bool = False  # a tool result that reports a failure (Anthropic's ``is_error``)
    reasoning: str | None = None  # model "thinking" text, where the upstream exposes it

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None  # for mode="tool"
    parallel: bool | None = None


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat (or, with ``prompt`` set, a plain text-completion) request."""

    model: str
    messages: list[Message] = field(default_factory=list)
    prompt: str | None = None  # text-completion mode: complete this text instead of a conversation
    suffix: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in the stream
    user: str | None = None
    metadata: dict[str, Any] | None = None
    think: bool | str | None = None  # ask for reasoning: True, or an effort level ("low"/"medium"/"high")
    # Fields only one wire format has (Ollama ``options``/``keep_alive``, Anthropic ``service_tier``...), keyed by
    # format name; a provider of that format applies them, others refuse them (codecs/expressible.py).
    native: dict[str, dict[str, Any]] = field(default_factory=dict)
    client_format: str = "openai"  # the format the caller spoke, so a refusal names the field in its terms

    def system_text(self) -> str:
        return "\n\n".join(m.text() for m in self.messages if m.role == "system")


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False  # the upstream reported no usage; these are Sluice's own estimate

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Choice:
    index: int
    message: Message
    finish_reason: FinishReason | None = None
    logprobs: Any = None  # OpenAI-format logprobs object, passed through where both sides have it


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


@dataclass(slots=True)
class EmbedRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    truncate: bool | None = None
    native: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class EmbedResponse:
    model: str
    vectors: list[list[float]]
    usage: Usage


# --- stream events -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int
    usage: Usage | None = None  # some upstreams (Anthropic) report prompt tokens up front


@dataclass(slots=True)
class TextDelta:
    text: str
    choice: int = 0
    logprobs: Any = None


@dataclass(slots=True)
class ReasoningDelta:
    text: str
    choice: int = 0


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a tool call; the first piece of each call carries ``id`` and ``name``."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    choice: int = 0


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    choice: int = 0


@dataclass(slots=True)
class UsageUpdate:
    """Usage so far; later updates replace earlier ones field by field where non-zero."""

    usage: Usage


StreamEvent = StreamStart | TextDelta | ReasoningDelta | ToolCallDelta | Finish | UsageUpdate


def merge_usage(current: Usage | None, update: Usage) -> Usage:
    """Combine usage reported in pieces (Anthropic sends input tokens first, output tokens last)."""
    if current is None:
        return Usage(update.prompt_tokens, update.completion_tokens, update.cached_tokens, update.estimated)
    return Usage(
        update.prompt_tokens or current.prompt_tokens,
        update.completion_tokens or current.completion_tokens,
        update.cached_tokens or current.cached_tokens,
        current.estimated and update.estimated,
    )
