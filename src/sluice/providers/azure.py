"""Azure OpenAI: OpenAI's wire format at deployment-scoped URLs, authenticated with an ``api-key`` header.

With ``api_version`` set (e.g. ``2024-10-21``) requests go to the classic
``{base_url}/openai/deployments/{deployment}/{endpoint}?api-version=...`` routes, where the deployment comes from
the deployment's ``model``. Without it they go to the newer v1 routes, ``{base_url}/openai/v1/{endpoint}``, which
take the deployment name in the body's ``model`` like OpenAI itself.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from sluice.config import ProviderConfig
from sluice.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    kind: ClassVar[str] = "azure"

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"api-key": config.api_key.get_secret_value()} if config.api_key is not None else {}

    def path(self, endpoint: str, model: str | None = None) -> str:
        version = self.config.api_version
        if version is None:
            return f"/openai/v1{endpoint}"
        if model is None:
            return f"/openai{endpoint}?api-version={quote(version)}"
        return f"/openai/deployments/{quote(model, safe='')}{endpoint}?api-version={quote(version)}"

    @property
    def serves_responses(self) -> bool:
        if self.config.responses_api is not None:
            return self.config.responses_api
        return self.config.api_version is None  # the v1 routes have /openai/v1/responses
