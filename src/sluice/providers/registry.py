"""Which class serves each provider kind. Adding a provider is one module plus one line here."""

from __future__ import annotations

from sluice.config import ProviderConfig
from sluice.providers.anthropic import AnthropicProvider
from sluice.providers.azure import AzureOpenAIProvider
from sluice.providers.base import Provider
from sluice.providers.gemini import GeminiProvider
from sluice.providers.mock import MockProvider
from sluice.providers.ollama import OllamaProvider
from sluice.providers.openai import OpenAIProvider

_KINDS: dict[str, type[Provider]] = {  # read-only after import
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "gemini": GeminiProvider,
    "anthropic": AnthropicProvider,
    "ollama": OllamaProvider,
    "mock": MockProvider,
}


def build_provider(config: ProviderConfig) -> Provider:
    cls = _KINDS.get(config.kind)
    if cls is None:
        raise ValueError(f"provider kind {config.kind!r} is not available")
    return cls(config)


def available_kinds() -> list[str]:
    return sorted(_KINDS)
