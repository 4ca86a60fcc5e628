"""Google Gemini, through Google's documented OpenAI-compatible endpoint (chat, streaming, tools, embeddings).

Requests are OpenAI's, authenticated with ``Authorization: Bearer <Gemini API key>``, under
``https://generativelanguage.googleapis.com/v1beta/openai``. Its model list names models the way Gemini's own API
does (``models/gemini-2.5-flash``) while chat and embeddings take the bare id, so the prefix is removed.
"""

from __future__ import annotations

from typing import ClassVar

from sluice.providers.openai import OpenAIProvider

GEMINI_OPENAI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"


class GeminiProvider(OpenAIProvider):
    kind: ClassVar[str] = "gemini"
    default_base_url: ClassVar[str] = GEMINI_OPENAI_BASE_URL

    async def list_models(self) -> list[str]:
        return [name.removeprefix("models/") for name in await super().list_models()]
