"""A real Sluice in front of one upstream of every kind: fake OpenAI, fake Anthropic, fake Ollama and the mock.

Model ``up-<kind>`` is served by that kind's upstream. ``drop=True`` adds ``drop-<kind>`` models on providers of
the same kinds with ``drop_unsupported: true``, on the same fakes. Providers are named ``oa``, ``an``, ``ol``, ``mk``.
``up-openai-responses`` is the fake OpenAI again, as an upstream that serves the Responses API itself (provider
``oa-resp``, ``responses_api: true``): ``/v1/responses`` passes through to it, where ``up-openai`` translates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai

from tests.fakes import FakeAnthropic, FakeOllama, FakeOpenAI, FakeUpstream
from tests.support.server import SluiceServer, make_settings

UPSTREAMS = ("openai", "anthropic", "ollama", "mock")
UPSTREAM_MODELS = {"openai": "gpt-fake", "anthropic": "claude-fake", "ollama": "llama-fake:latest", "mock": "mock-1"}


@dataclass
class Rig:
    gateway: SluiceServer
    fakes: dict[str, FakeUpstream]

    def fake(self, kind: str) -> FakeUpstream | None:
        return self.fakes.get(kind)

    def generated(self, kind: str) -> int:
        """Generation requests the kind's fake has seen (0 for the mock, which has no fake)."""
        fake = self.fakes.get(kind)
        return fake.attempts if fake is not None else 0  # up-openai-responses: the "openai" fake's

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.url + "/v1", api_key=self.gateway.master_key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=self.gateway.master_key, max_retries=0)

    @contextmanager
    def ollama(self) -> Iterator[ollama.Client]:
        """An ``ollama`` client (it has no ``__enter__`` of its own), closed on leaving."""
        client = ollama.Client(host=self.gateway.url, headers={"Authorization": f"Bearer {self.gateway.master_key}"})
        try:
            yield client
        finally:
            client.close()


def _providers(fo: FakeOpenAI, fa: FakeAnthropic, fl: FakeOllama, drop: bool) -> list[dict[str, Any]]:
    base = [
        {"name": "oa", "kind": "openai", "base_url": fo.base_url},
        {"name": "oa-resp", "kind": "openai", "base_url": fo.base_url, "responses_api": True},
        {"name": "an", "kind": "anthropic", "base_url": fa.url},
        {"name": "ol", "kind": "ollama", "base_url": fl.url},
        {"name": "mk", "kind": "mock"},
    ]
    dropping = [{**p, "name": p["name"] + "-drop", "drop_unsupported": True} for p in base if p["name"] != "oa-resp"]
    dropping = dropping if drop else []
    return base + dropping


def _models(drop: bool) -> list[dict[str, Any]]:
    providers = dict(zip(UPSTREAMS, ("oa", "an", "ol", "mk"), strict=True))
    variants = [("up", "")] + ([("drop", "-drop")] if drop else [])
    responses = {"name": "up-openai-responses", "deployments": [{"provider": "oa-resp", "model": "gpt-fake"}]}
    return [responses] + [
        {
            "name": f"{prefix}-{kind}",
            "deployments": [{"provider": providers[kind] + suffix, "model": UPSTREAM_MODELS[kind]}],
        }
        for prefix, suffix in variants
        for kind in UPSTREAMS
    ]


@contextmanager
def every_kind(
    data_dir: Path,
    *,
    drop: bool = False,
    models: list[dict[str, Any]] | None = None,
    providers: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[Rig]:
    """The rig; ``models`` and ``providers`` are added to its own, ``extra`` are further top-level settings."""
    with FakeOpenAI() as fo, FakeAnthropic() as fa, FakeOllama() as fl:
        config: dict[str, Any] = {
            "health": {"interval_seconds": 0},  # no background checks among the requests tests read back
            "providers": _providers(fo, fa, fl, drop) + (providers or []),
            "models": _models(drop) + (models or []),
            **(extra or {}),
        }
        with SluiceServer(make_settings(data_dir, config)) as gateway:
            yield Rig(gateway, {"openai": fo, "anthropic": fa, "ollama": fl})
