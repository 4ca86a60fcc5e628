"""The HTTP providers' shared base: the headers each kind sends on every request and how it reads error bodies."""

from __future__ import annotations

from sluice.config import ProviderConfig
from sluice.providers.anthropic import DEFAULT_VERSION, AnthropicProvider
from sluice.providers.azure import AzureOpenAIProvider
from sluice.providers.ollama import OllamaProvider
from sluice.providers.openai import OpenAIProvider


def config(kind: str, **fields: object) -> ProviderConfig:
    return ProviderConfig.model_validate({"name": "p", "kind": kind, **fields})


def test_openai_configured_headers_win_over_its_bearer_credential() -> None:
    provider = OpenAIProvider(config("openai", api_key="sk", headers={"Authorization": "Bearer own", "X-A": "1"}))
    assert provider.upstream_headers(provider.config) == {"Authorization": "Bearer own", "X-A": "1"}
    bare = OpenAIProvider(config("openai", api_key="sk"))
    assert bare.upstream_headers(bare.config) == {"Authorization": "Bearer sk"}


def test_azure_sends_its_key_as_api_key_header() -> None:
    provider = AzureOpenAIProvider(config("azure", api_key="az", base_url="http://127.0.0.1:1"))
    assert provider.upstream_headers(provider.config) == {"api-key": "az"}


def test_anthropic_sends_version_and_key_and_configured_headers_win() -> None:
    provider = AnthropicProvider(config("anthropic", api_key="ak", headers={"anthropic-version": "2099-01-01"}))
    assert provider.upstream_headers(provider.config) == {"anthropic-version": "2099-01-01", "x-api-key": "ak"}
    bare = AnthropicProvider(config("anthropic"))
    assert bare.upstream_headers(bare.config) == {"anthropic-version": DEFAULT_VERSION}


def test_ollama_api_key_wins_over_a_configured_authorization_header() -> None:
    provider = OllamaProvider(config("ollama", api_key="ok", headers={"Authorization": "Bearer own", "X-B": "2"}))
    assert provider.upstream_headers(provider.config) == {"Authorization": "Bearer ok", "X-B": "2"}
    bare = OllamaProvider(config("ollama"))
    assert bare.upstream_headers(bare.config) == {}


def test_each_kind_reads_the_message_of_its_own_error_shape() -> None:
    openai, anthropic, ollama = (
        OpenAIProvider(config("openai")),
        AnthropicProvider(config("anthropic")),
        OllamaProvider(config("ollama")),
    )
    assert openai.error_message({"error": {"message": "bad"}}) == "bad"
    assert openai.error_message({"message": "flat"}) == "flat"
    assert anthropic.error_message({"type": "error", "error": {"type": "x", "message": "no"}}) == "no"
    assert anthropic.error_message({"error": "plain"}) is None
    assert ollama.error_message({"error": "model not found"}) == "model not found"
    assert ollama.error_message({"error": {"message": "nested"}}) is None
