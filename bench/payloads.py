"""Canned wire bytes: what the load generator sends and what the mock upstream answers.

The shapes follow OpenAI's chat completions API closely enough that Sluice's pass-through path does its real
work on them (model lookup, usage read from the answer, SSE frames inspected one by one).
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "bench-chat"  # public name == upstream name, so Sluice forwards the client's bytes untouched
STREAM_MODEL = "bench-stream"
CREATED = 1_732_000_000
# Nine content frames, plus the role frame, the finish frame and the usage frame.
STREAM_PIECES = (
    "Every ",
    "millisecond ",
    "a gateway ",
    "adds ",
    "is paid ",
    "by every ",
    "user, ",
    "so keep ",
    "it cheap.",
)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def chat_request(stream: bool = False) -> bytes:
    """A realistic small chat request: a system prompt, a user message and max_tokens."""
    body: dict[str, Any] = {
        "model": STREAM_MODEL if stream else MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
            {"role": "user", "content": "Explain in two sentences why a gateway should add little latency."},
        ],
        "max_tokens": 128,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        # Sluice asks the upstream for usage anyway; asking here too keeps the body identical on every path.
        body["stream_options"] = {"include_usage": True}
    return _dumps(body)


def chat_completion() -> bytes:
    """A non-stream ``chat.completion`` of about 600 bytes, with usage."""
    return _dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000001",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench0001",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": (
                            "A gateway sits on every request, so each millisecond it adds is paid by every user "
                            "and every retry. Keeping its own work to a few cheap in-memory steps lets the model "
                            "server, not the proxy, decide how fast answers arrive."
                        ),
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 41,
                "completion_tokens": 52,
                "total_tokens": 93,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench0000000000000000000000002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": STREAM_MODEL,
        "system_fingerprint": "fp_bench0001",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def sse_frames() -> list[bytes]:
    """The SSE frames of one streamed answer: role, content pieces, finish, usage, ``[DONE]``."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": piece}) for piece in STREAM_PIECES]
    chunks.append(_chunk({}, finish="stop"))
    usage = {**_chunk({}), "choices": [], "usage": {"prompt_tokens": 41, "completion_tokens": 20, "total_tokens": 61}}
    chunks.append(usage)
    frames = [b"data: " + _dumps(c) + b"\n\n" for c in chunks]
    frames.append(b"data: [DONE]\n\n")
    return frames
