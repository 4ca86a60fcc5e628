"""Google Gemini, through Google's documented OpenAI-compatible endpoint (chat, streaming, tools, embeddings)."""

from __future__ import annotations

from typing import ClassVar

from sluice.providers.openai import OpenAIProvider

GEMINI_OPENAI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"


class GeminiProvider(OpenAIProvider):
    kind: ClassVar[str] = "gemini"
    default_base_url: ClassVar[str] = GEMINI_OPENAI_BASE_URL
