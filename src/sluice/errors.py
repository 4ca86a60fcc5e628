"""The one error hierarchy.

Every failure a caller can see is a :class:`SluiceError` with an HTTP status and a machine-readable ``kind``.
Vendor and transport errors are mapped to the most specific subclass at the provider boundary; each surface
renders the error once, in its own API's shape (see ``surfaces/*/errors``). Messages are written for the caller
and must never contain secrets, file paths, SQL or stack traces.
"""

from __future__ import annotations


class SluiceError(Exception):
    """Root of every error Sluice reports to a caller."""

    status: int = 500
    kind: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        if status is not None:
            self.status = status


class InvalidRequest(SluiceError):
    """The request is malformed or names a field with a bad value (400)."""

    status = 400
    kind = "invalid_request"


class Unsupported(InvalidRequest):
    """The request asks for something the chosen upstream cannot express (400)."""

    kind = "unsupported"


class AuthenticationFailed(SluiceError):
    """No credentials, or credentials that do not verify (401)."""

    status = 401
    kind = "authentication"


class PermissionDenied(SluiceError):
    """Authenticated, but not allowed to do this (403)."""

    status = 403
    kind = "permission"


class NotFound(SluiceError):
    """The named model or object does not exist, or is not visible to the caller (404)."""

    status = 404
    kind = "not_found"


class Conflict(SluiceError):
    """The change collides with what exists (an email or a name already taken, a model defined elsewhere)."""

    status = 409
    kind = "conflict"


class PayloadTooLarge(SluiceError):
    """The request body is over the configured limit (413)."""

    status = 413
    kind = "payload_too_large"


class HeadersTooLarge(SluiceError):
    """Too many request headers, or too many bytes of them (431)."""

    status = 431
    kind = "headers_too_large"


class RateLimited(SluiceError):
    """A rate limit, quota or the queue refused the request for now (429)."""

    status = 429
    kind = "rate_limit"


class BudgetExceeded(SluiceError):
    """A money budget for the current period is spent (403 by default)."""

    status = 403
    kind = "budget_exceeded"


class Overloaded(SluiceError):
    """No capacity now: queue full, every deployment down, or a dependency unavailable (503)."""

    status = 503
    kind = "overloaded"


class CutAtShutdown(Overloaded):
    """The gateway shut down (its graceful period over) while the request was still running: recorded as cut."""

    kind = "cut_at_shutdown"


class UpstreamError(SluiceError):
    """The upstream failed: refused the connection, answered 5xx, or sent something unusable (502)."""

    status = 502
    kind = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within a deadline (504)."""

    status = 504
    kind = "upstream_timeout"


class UpstreamRejected(SluiceError):
    """The upstream refused the request itself (its 4xx), passed on with the upstream's status."""

    status = 400
    kind = "upstream_rejected"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists each one with its path in the file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class QueueFull(RateLimited):
    """A deployment's queue holds as many waiting requests of the caller's priority class as it may (429)."""

    kind = "rate_limit"


class QueueTimeout(Overloaded):
    """A request waited its priority class's longest wait for a slot on a deployment (503)."""

    kind = "overloaded"
