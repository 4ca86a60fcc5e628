"""What each upstream kind can express, and the one check every translated request passes before it is encoded.

A translated request carries canonical fields and, under ``native``, the fields only its client's format has
(an OpenAI client's ``logit_bias``, an Anthropic client's ``service_tier``, an Ollama client's ``options.mirostat``).
Encoders write only what their own format can say, so anything else would vanish on the way upstream. This check
runs first, for every provider, and turns such a loss into a 400 naming the field in the caller's own terms; with
the provider's ``drop_unsupported: true`` it lets the request go on without them (the encoders leave them out).

Documented exceptions, which change nothing about the answer and are never refused: Ollama's runtime options
(``num_ctx``, ``num_gpu``...) and ``keep_alive`` (they tune how an Ollama server loads a model), and values that
ask for nothing (``null``, ``false``, empty strings, arrays and objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.canonical import ChatRequest, ImagePart
from sluice.codecs.ollama.request import RUNTIME_OPTIONS
from sluice.errors import Unsupported


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The request features one upstream kind can carry (True: it can)."""

    label: str  # for messages: "This model's upstream (<label>) cannot ..."
    native: str | None  # the client format whose native fields this upstream takes as they are
    choices: bool = True  # n > 1
    logprobs: bool = True
    seed: bool = True
    penalties: bool = True  # non-zero presence / frequency penalties
    json_object: bool = True
    json_schema: bool = True
    forced_tool: bool = True  # tool_choice "required" or a named tool
    serial_tools: bool = True  # parallel tool calls can be turned off
    strict_tools: bool = True  # tools[].function.strict
    suffix: bool = True  # text insertion (completions' and Ollama generate's suffix)
    image_urls: bool = True  # images by URL (Sluice never fetches URLs itself)


OPENAI = Capabilities("OpenAI-compatible", "openai")
# Anthropic has JSON schemas (output_config.format) and strict tools natively, and JSON mode through a forced tool
# call (codecs/anthropic/structured.py).
ANTHROPIC = Capabilities(
    "Anthropic",
    "anthropic",
    choices=False,
    logprobs=False,
    seed=False,
    penalties=False,
    suffix=False,
)
# Ollama added logprobs in 0.12.11; older servers ignore the field without a word, so it is not sent.
OLLAMA = Capabilities(
    "Ollama",
    "ollama",
    choices=False,
    logprobs=False,
    forced_tool=False,
    serial_tools=False,
    strict_tools=False,
    image_urls=False,
)
# The mock's text is deterministic: sampling settings and seeds have nothing to change, so it takes them; its JSON
# answers and tool arguments are instances of the schemas given (providers/schema_instances.py).
MOCK = Capabilities("mock", None, logprobs=False, suffix=False)

_FORMAT_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "ollama": "Ollama"}
# Canonical names as each client format spells them, where they differ.
_CLIENT_NAMES = {
    "anthropic": {"parallel_tool_calls": "tool_choice.disable_parallel_tool_use", "response_format": "output_config"},
    "responses": {"response_format": "text.format", "verbosity": "text.verbosity"},
    "ollama": {
        "response_format": "format",
        "seed": "options.seed",
        "presence_penalty": "options.presence_penalty",
        "frequency_penalty": "options.frequency_penalty",
    },
}
_IGNORED_NATIVE = {"ollama": frozenset({"keep_alive", "system"})}  # generate's system is a system message too


def check_expressible(req: ChatRequest, caps: Capabilities, drop: bool) -> None:
    """Raise :class:`Unsupported` for the first feature ``caps`` cannot express, unless ``drop`` is set."""
    problem = _first_problem(req, caps)
    if problem is None or drop:
        return
    param, feature = problem
    name = _CLIENT_NAMES.get(req.client_format, {}).get(param, param)
    if req.client_format in ("anthropic", "responses"):
        name = name.replace(".function.strict", ".strict")  # their tools have no "function" level
    raise Unsupported(
        f"This model's upstream ({caps.label}) cannot do {feature}; remove '{name}' from the request "
        "(or the operator can set drop_unsupported on the provider).",
        param=name,
        code="unsupported_parameter",
    )


def _first_problem(req: ChatRequest, caps: Capabilities) -> tuple[str, str] | None:
    found = _sampling_problems(req, caps) or _shape_problems(req, caps)
    return found[0] if found else _native_problem(req, caps)


def _sampling_problems(req: ChatRequest, caps: Capabilities) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if req.n != 1 and not caps.choices:
        found.append(("n", "several choices (n > 1)"))
    if (req.logprobs or req.top_logprobs) and not caps.logprobs:
        found.append(("logprobs", "log probabilities"))
    if req.seed is not None and not caps.seed:
        found.append(("seed", "a seed"))
    if not caps.penalties:
        if req.presence_penalty:
            found.append(("presence_penalty", "penalties"))
        if req.frequency_penalty:
            found.append(("frequency_penalty", "penalties"))
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object" and not caps.json_object:
        found.append(("response_format", "a JSON response format"))
    if fmt is not None and fmt.type == "json_schema" and not caps.json_schema:
        found.append(("response_format", "a JSON schema response format"))
    return found


def _shape_problems(req: ChatRequest, caps: Capabilities) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    choice = req.tool_choice
    if choice is not None and req.tools:
        if choice.mode in ("required", "tool") and not caps.forced_tool:
            found.append(("tool_choice", "forcing a tool call"))
        if choice.parallel is False and not caps.serial_tools:
            found.append(("parallel_tool_calls", "turning parallel tool calls off"))
    if not caps.strict_tools:
        for i, tool in enumerate(req.tools):
            if tool.strict:
                found.append((f"tools[{i}].function.strict", "strict tool schemas"))
    if req.suffix is not None and not caps.suffix:
        found.append(("suffix", "a suffix (text insertion)"))
    if not caps.image_urls and any(
        isinstance(p, ImagePart) and p.url is not None for m in req.messages for p in m.content
    ):
        found.append(("messages", "images given by URL (send them inline as base64)"))
    return found


def _native_problem(req: ChatRequest, caps: Capabilities) -> tuple[str, str] | None:
    for fmt, fields in req.native.items():
        if fmt == caps.native:
            continue
        ignored = _IGNORED_NATIVE.get(fmt, frozenset())
        for key, value in fields.items():
            if key in ignored or _asks_nothing(value):
                continue
            if fmt == "ollama" and key == "options" and isinstance(value, dict):
                for option, setting in value.items():
                    if option not in RUNTIME_OPTIONS and not _asks_nothing(setting):
                        return f"options.{option}", f"the Ollama option '{option}'"
                continue
            return key, f"the {_FORMAT_LABELS.get(fmt, fmt)} parameter '{key}'"
    return None


def _asks_nothing(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str | list | dict) and not value)
