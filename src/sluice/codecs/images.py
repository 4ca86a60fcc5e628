"""Images carried as ``data:`` URLs (OpenAI) or as bare base64 with a media type (Anthropic, Ollama)."""

from __future__ import annotations

import base64
import binascii

from sluice.errors import InvalidRequest

_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def parse_data_url(url: str, path: str) -> tuple[str, str]:
    """Split ``data:image/png;base64,AAAA`` into (media type, base64 data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidRequest(f"Invalid image at '{path}': expected a base64 data: URL.", param=path)
    media_type = header[len("data:") : -len(";base64")] or "application/octet-stream"
    return media_type, data


def data_url(media_type: str | None, data: str) -> str:
    return f"data:{media_type or sniff_media_type(data)};base64,{data}"


def sniff_media_type(data: str) -> str:
    """Guess an image's media type from its first bytes (Ollama sends bare base64 without one)."""
    try:
        head = base64.b64decode(data[:32] + "=" * (-len(data[:32]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return "image/png"
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    return "image/png"
