"""Who is calling: the identity every later stage (limits, scheduling, accounting) works from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["master", "key", "user", "network", "service"]  # service: an IdP's service token

DEFAULT_PRIORITY = "standard"
# Priority classes, most urgent first (the scheduler's classes; used to rank grants).
PRIORITY_ORDER: tuple[str, ...] = ("interactive", "standard", "batch")


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: str  # the key id, user id, network rule id, "<issuer>:<subject>" of a service token, or "master"
    role: str  # "admin", or the workspace role: "owner" | "member" | "viewer"
    workspace_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    priority: str = DEFAULT_PRIORITY
    allowed_models: frozenset[str] | None = None  # None: every model
    label: str = ""  # safe to log: a key's visible prefix, never the secret
    expires_at: float | None = None  # epoch seconds; checked on every use
    cache: bool | None = None  # the key's response-cache setting (None: the model's, then the gateway's)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def tenant(self) -> str:
        """The unit fairness and limits are shared by: the workspace, else the principal itself."""
        return self.workspace_id or f"{self.kind}:{self.id}"

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


MASTER = Principal(kind="master", id="master", role="admin", label="master", priority="interactive")
