"""The Provider interface: the one seam between Sluice and an upstream kind.

A provider turns canonical requests into its upstream's wire format and the upstream's answers (streamed or not)
back into canonical responses and events. Providers whose upstream speaks a client-facing format (OpenAI,
Anthropic, Ollama) also offer :meth:`Provider.forward`, the pass-through used when client and upstream agree.

Errors leave a provider only as :class:`~sluice.errors.SluiceError` subclasses, mapped at this boundary.
:class:`HttpProvider` is the base of every provider whose upstream is reached over HTTP: one pooled
:class:`~sluice.providers.http.HttpUpstream` per provider, opened at start-up and closed at shutdown.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

from sluice.canonical import ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, StreamEvent
from sluice.codecs.expressible import Capabilities, check_expressible
from sluice.config import ProviderConfig, Timeouts
from sluice.errors import Unsupported
from sluice.providers.http import HttpUpstream, UpstreamResponse, generic_error_message


@dataclass(frozen=True, slots=True)
class Target:
    """Where one call goes: the upstream's model name and the deadlines that apply to it."""

    model: str
    timeouts: Timeouts


class Provider(abc.ABC):
    kind: ClassVar[str]
    # The client-facing format this provider's upstream speaks natively, if any: requests from a surface of the
    # same format are forwarded through :meth:`forward` without translation.
    wire_format: ClassVar[str | None] = None
    # What a translated request may ask of this upstream; chat() and stream() check it before anything is sent.
    capabilities: ClassVar[Capabilities]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    @property
    def serves_responses(self) -> bool:
        """Whether ``/v1/responses`` passes through to this upstream (it serves OpenAI's Responses API itself)."""
        return False

    def accept(self, req: ChatRequest) -> None:
        """Refuse (400) what this upstream cannot express, unless the provider is set to drop it."""
        check_expressible(req, self.capabilities, self.config.drop_unsupported)

    async def start(self) -> None:
        """Open pooled connections; called once at start-up."""
        return None

    async def close(self) -> None:
        """Close pooled connections; called once at shutdown."""
        return None

    @abc.abstractmethod
    async def chat(self, req: ChatRequest, target: Target) -> ChatResponse: ...

    @abc.abstractmethod
    def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        """Stream canonical events. Errors before the first event mean nothing reached the client yet."""

    async def embed(self, req: EmbedRequest, target: Target) -> EmbedResponse:
        raise Unsupported(f"Provider kind {self.kind!r} does not offer embeddings.", param="model")

    @abc.abstractmethod
    async def list_models(self) -> list[str]:
        """The model names the upstream serves (used for discovery and health)."""

    async def health(self) -> None:
        """Raise a SluiceError if the upstream is unreachable; the default lists models."""
        await self.list_models()

    async def forward(
        self, path: str, body: bytes, target: Target, stream: bool, headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        """Send a request already in this provider's wire format; return the raw, open response."""
        raise Unsupported(f"Provider kind {self.kind!r} has no pass-through.")


class HttpProvider(Provider):
    """A provider whose upstream is one HTTP base URL: the pooled client, its headers, start/stop and pass-through."""

    default_base_url: ClassVar[str]

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.http = HttpUpstream(
            config.base_url or self.default_base_url,
            self.upstream_headers(config),
            config.max_connections,
            self.error_message,
            config.max_response_bytes,
        )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        """The headers carrying the provider's credentials (and any the upstream requires on every request)."""
        if config.api_key is None:
            return {}
        return {"Authorization": f"Bearer {config.api_key.get_secret_value()}"}

    def upstream_headers(self, config: ProviderConfig) -> dict[str, str]:
        """Every upstream request's headers: the credentials, then the configured ``headers`` (which win)."""
        return {**self.auth_headers(config), **config.headers}

    def error_message(self, body: Any) -> str | None:
        """The human message inside an upstream's JSON error body, if it has one."""
        return generic_error_message(body)

    def path(self, endpoint: str, model: str | None = None) -> str:
        """The URL path for an endpoint of the upstream's API (a provider may put the model in it)."""
        return endpoint

    async def start(self) -> None:
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()

    async def forward(
        self, path: str, body: bytes, target: Target, stream: bool, headers: dict[str, str] | None = None
    ) -> UpstreamResponse:
        return await self.http.request("POST", self.path(path, target.model), target.timeouts, body, headers)
