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
