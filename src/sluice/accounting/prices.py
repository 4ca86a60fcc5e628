"""Prices and cost: money per million tokens in, exact integer nano-units out.

Costs are kept as integers of 1e-9 of the currency ("nanos") everywhere they are added up (budget counters,
usage records, roll-ups), so sums never drift and Redis can add them atomically. A price table entry gives input,
output and cached-input prices per million tokens; cached input defaults to the input price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sluice.canonical import Usage

NANOS_PER_UNIT = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float  # per million input tokens
    output: float  # per million output tokens
    cached_input: float | None = None

    def cost_nanos(self, usage: Usage) -> int:
        """What a finished call cost, rounded to the nearest nano."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        cached_price = self.input if self.cached_input is None else self.cached_input
        # (price per million tokens) * tokens = micro-units; * 1000 = nanos
        nanos = (fresh * self.input + cached * cached_price + usage.completion_tokens * self.output) * 1000
        return round(nanos)

    def worst_case_nanos(self, prompt_tokens: int, max_output_tokens: int) -> int:
        """The most a call can cost, rounded up (reservations must never be short)."""
        return math.ceil((prompt_tokens * self.input + max_output_tokens * self.output) * 1000)


FREE = ModelPrice(0.0, 0.0, 0.0)

# Published list prices (USD per million tokens) for well-known models, used when the configuration names none.
# Configured prices (models[].price, deployments[].price) always win; unknown models cost nothing.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.5, 10.0, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.6, 0.075),
    "gpt-4.1": ModelPrice(2.0, 8.0, 0.5),
    "gpt-4.1-mini": ModelPrice(0.4, 1.6, 0.1),
    "gpt-4.1-nano": ModelPrice(0.1, 0.4, 0.025),
    "o3": ModelPrice(2.0, 8.0, 0.5),
    "o4-mini": ModelPrice(1.1, 4.4, 0.275),
    "text-embedding-3-small": ModelPrice(0.02, 0.0),
    "text-embedding-3-large": ModelPrice(0.13, 0.0),
    "claude-opus-4": ModelPrice(15.0, 75.0, 1.5),
    "claude-sonnet-4": ModelPrice(3.0, 15.0, 0.3),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0, 0.08),
    "gemini-2.5-pro": ModelPrice(1.25, 10.0, 0.31),
    "gemini-2.5-flash": ModelPrice(0.3, 2.5, 0.075),
}


def default_price(model: str) -> ModelPrice | None:
    """A list price for a well-known model name, matching dated snapshots by prefix (gpt-4o-2024-08-06)."""
    if model in DEFAULT_PRICES:
        return DEFAULT_PRICES[model]
    best = max((name for name in DEFAULT_PRICES if model.startswith(name + "-")), key=len, default=None)
    return DEFAULT_PRICES[best] if best is not None else None


def nanos_to_units(nanos: int) -> float:
    return nanos / NANOS_PER_UNIT


def units_to_nanos(units: float) -> int:
    return round(units * NANOS_PER_UNIT)


class PriceBook:
    """Which price applies to a call: stored override, deployment, model, then a well-known default."""

    def __init__(self, stored: Mapping[str, ModelPrice] | None = None) -> None:
        self._stored: dict[str, ModelPrice] = dict(stored or {})

    def replace_stored(self, stored: Mapping[str, ModelPrice]) -> None:
        self._stored = dict(stored)

    @property
    def stored(self) -> dict[str, ModelPrice]:
        return dict(self._stored)

    def price(
        self,
        model: str | None,
        deployment_price: ModelPrice | None,
        model_price: ModelPrice | None,
        upstream_model: str | None,
    ) -> ModelPrice:
        if model is not None and model in self._stored:
            return self._stored[model]
        for candidate in (deployment_price, model_price):
            if candidate is not None:
                return candidate
        for name in (upstream_model, model):
            if name:
                found = default_price(name)
                if found is not None:
                    return found
        return FREE

    @staticmethod
    def most_expensive(prices: list[ModelPrice]) -> ModelPrice:
        """A price no deployment exceeds, for reservations made before the deployment is chosen."""
        if not prices:
            return FREE
        return ModelPrice(max(p.input for p in prices), max(p.output for p in prices))
