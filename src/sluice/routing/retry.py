"""Which failures are worth another attempt, how long to wait first, and which ones move to a fallback model.

Only failures before the first byte reaches the client are retried (afterwards the client has part of an answer
and retrying would duplicate it); that is enforced by the caller, which retries only around the attempt.
"""

from __future__ import annotations

import random
import re

from sluice.config import FallbackOn, RoutingConfig
from sluice.errors import Overloaded, RateLimited, SluiceError, UpstreamError, UpstreamRejected, UpstreamTimeout

_CONTEXT_WINDOW = re.compile(r"context.?(length|window)|maximum context|too many tokens|prompt is too long", re.I)


def retryable(error: SluiceError) -> bool:
    """Connection failures, timeouts, 5xx and the upstream's own 429: another attempt may well succeed.

    A full deployment queue (:class:`~sluice.errors.QueueFull`) is not among them: the router moves such a
    request to a sibling deployment without counting an attempt, and never back to the full one.
    """
    if isinstance(error, UpstreamTimeout | UpstreamError):
        return True
    if isinstance(error, RateLimited):
        return error.code == "upstream_429"
    if isinstance(error, Overloaded):
        return error.code in ("mock_failure", "no_capacity")
    return False


def counts_against_deployment(error: SluiceError) -> bool:
    """Whether the failure says something about the upstream's health (for its circuit breaker)."""
    return isinstance(error, UpstreamTimeout | UpstreamError) or (
        isinstance(error, RateLimited) and error.code == "upstream_429"
    )


def fallback_class(error: SluiceError) -> FallbackOn | None:
    """The kind of failure a model's ``fallbacks[].on`` lists match against."""
    if isinstance(error, UpstreamRejected) and _CONTEXT_WINDOW.search(error.message):
        return "context_window"
    if isinstance(error, RateLimited) and error.code == "upstream_429":
        return "rate_limit"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamError):
        return "upstream_error"
    if isinstance(error, Overloaded):
        return "overloaded"
    return None


def backoff(config: RoutingConfig, retry_number: int, error: SluiceError, rng: random.Random) -> float | None:
    """Seconds to wait before trying a deployment again (full jitter), or None when it should not be retried.

    An upstream's ``Retry-After`` is honoured when it is within ``respect_retry_after_up_to``; a longer one means
    this deployment is out for now.
    """
    retry_after = error.headers.get("Retry-After") if isinstance(error, RateLimited) else None
    if retry_after is not None:
        try:
            wait = float(retry_after)
        except ValueError:
            wait = config.backoff_max
        return wait if wait <= config.respect_retry_after_up_to else None
    ceiling = min(config.backoff_max, config.backoff_base * (2**retry_number))
    return rng.uniform(0, ceiling)
