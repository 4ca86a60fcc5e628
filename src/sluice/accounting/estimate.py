"""Token estimates for when an upstream reports no usage (marked ``estimated``) and for admission.

Sluice ships no tokenizer files (nothing may be downloaded at run time), so the estimate is the common rule of
thumb of about four characters per token plus a small per-message overhead. It errs high on purpose: admission
reserves against it, and settlement corrects to the upstream's real figures.
"""

from __future__ import annotations

from sluice.canonical import ChatRequest, ImagePart, Message

MESSAGE_OVERHEAD = 4
IMAGE_TOKENS = 765  # OpenAI's figure for one 512x512 high-detail tile set; a deliberate upper-middle guess


def estimate_text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def estimate_message_tokens(message: Message) -> int:
    total = MESSAGE_OVERHEAD + estimate_text_tokens(message.text())
    total += sum(IMAGE_TOKENS for p in message.content if isinstance(p, ImagePart))
    for call in message.tool_calls:
        total += estimate_text_tokens(call.name) + estimate_text_tokens(call.arguments)
    return total


def estimate_prompt_tokens(req: ChatRequest) -> int:
    if req.prompt is not None:
        return max(1, estimate_text_tokens(req.prompt))
    total = sum(estimate_message_tokens(m) for m in req.messages) + 3
    for tool in req.tools:
        total += estimate_text_tokens(tool.name) + estimate_text_tokens(str(tool.parameters)) + 8
    return total


# Keys whose string values are not prompt text (images, ids, settings) in the client formats' raw JSON.
_NOT_TEXT = frozenset(
    {
        "data",
        "url",
        "image_url",
        "images",
        "id",
        "tool_call_id",
        "tool_use_id",
        "model",
        "role",
        "type",
        "media_type",
        "source",
        "detail",
        "cache_control",
        "signature",
    }
)


def estimate_raw_prompt_tokens(data: dict[str, object]) -> int:
    """A prompt estimate straight from a client's JSON (any of the three formats) for the pass-through path.

    Counts the text under the fields that carry prompt text, and a fixed figure per image, without decoding
    the request into canonical types.
    """
    chars = 0
    images = 0
    stack: list[object] = [
        data.get(k) for k in ("messages", "system", "instructions", "prompt", "tools", "input", "suffix")
    ]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ("image_url", "images", "image") or (key == "source" and isinstance(value, dict)):
                    images += len(value) if isinstance(value, list) else 1
                elif key not in _NOT_TEXT:
                    stack.append(value)
    messages = data.get("messages")
    overhead = MESSAGE_OVERHEAD * (len(messages) if isinstance(messages, list) else 1) + 3
    return (chars + 3) // 4 + images * IMAGE_TOKENS + overhead
