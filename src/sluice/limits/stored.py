"""Stored limit policies, as the admin API and the CLI manage them: set, clear, list, and resolve a scope's limits
and budget spend exactly as admission does.

A key, user or workspace scope must exist and lie in the caller's view (identity says so: :class:`Subjects`); a
role default needs no subject. Every change is audited with the policy's image, and applied to this replica's
admission at once when a live policy table is given (a running gateway's); other replicas and gateways changed from
the CLI pick it up within their stored-settings refresh (15 s).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sluice.accounting.prices import nanos_to_units
from sluice.config import LimitsConfig
from sluice.errors import NotFound
from sluice.identity.audit import audit
from sluice.identity.grants import Authority
from sluice.identity.subjects import Subjects
from sluice.limits.periods import period_bounds
from sluice.limits.policy import ROLE_SCOPE, Limits, PolicyTable, Scope, Source
from sluice.limits.repository import LimitRepository
from sluice.store.db import Database
from sluice.store.models import LimitPolicy

SpendReader = Callable[[Scope, datetime, datetime], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Resolved:
    limits: Limits
    source: Source
    role: str | None  # the role whose default applies, when it is a role default


@dataclass(frozen=True, slots=True)
class Spend:
    resolved: Resolved
    start: datetime
    end: datetime
    spent_nanos: int


def limits_image(scope: str, scope_id: str, limits: Limits) -> dict[str, object]:
    """A stored policy as its audit row records it."""
    return {
        "scope": scope,
        "id": scope_id,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "concurrent": limits.concurrent,
        "budget": nanos_to_units(limits.budget_nanos) if limits.budget_nanos is not None else None,
        "period": limits.period,
    }


class StoredLimits:
    def __init__(
        self,
        db: Database,
        config: LimitsConfig,
        subjects: Subjects,
        spent: SpendReader,
        live: PolicyTable | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.subjects = subjects
        self.spent = spent
        self.live = live  # a running gateway's table: changes apply to its admission at once

    async def put(self, by: Authority, scope: str, scope_id: str, limits: Limits) -> None:
        """Set a scope's limits (replacing what it had)."""
        if scope != ROLE_SCOPE:
            await self.subjects.check_visible(by, scope, scope_id)
        async with self.db.session() as session:
            repo = LimitRepository(session)
            await repo.put(scope, scope_id, limits)
            audit(session, by.actor, "limits.put", scope, scope_id, after=limits_image(scope, scope_id, limits))
            stored = await repo.all()
        self._apply(stored)

    async def remove(self, by: Authority, scope: str, scope_id: str) -> None:
        """Remove a scope's stored limits (it falls back to the configuration and defaults); NotFound if none."""
        if scope != ROLE_SCOPE:
            await self.subjects.check_visible(by, scope, scope_id)
        async with self.db.session() as session:
            repo = LimitRepository(session)
            if not await repo.remove(scope, scope_id):
                what = "default for this role" if scope == ROLE_SCOPE else "limits for this scope"
                raise NotFound(f"No stored {what}.", code="limits_not_found")
            audit(session, by.actor, "limits.delete", scope, scope_id)
            stored = await repo.all()
        self._apply(stored)

    async def list(self) -> Sequence[LimitPolicy]:
        async with self.db.session() as session:
            return await LimitRepository(session).list()

    async def role_default(self, role: str) -> Resolved:
        limits, source = (await self._table()).role_default(role)
        return Resolved(limits, source, role)

    async def resolve(self, by: Authority, scope: str, scope_id: str, workspace_id: str | None = None) -> Resolved:
        """A key's, user's or workspace's limits as admission resolves them for its own key or user (with that
        owner's role; a user's role in ``workspace_id``: gateway admins may name one, others get their own)."""
        await self.subjects.check_visible(by, scope, scope_id)
        workspace = workspace_id if by.is_admin and workspace_id else by.principal.workspace_id
        role = await self.subjects.role_of(scope, scope_id, workspace)
        limits, source = (await self._table()).resolve(scope, scope_id, role)
        return Resolved(limits, source, role if source == "role" else None)

    async def spend(self, by: Authority, scope: str, scope_id: str, workspace_id: str | None = None) -> Spend:
        """Spend in the scope's current budget period, from its usage records, with the limits admission applies."""
        resolved = await self.resolve(by, scope, scope_id, workspace_id)
        limits = resolved.limits
        start, end = period_bounds(limits.period, datetime.now(UTC), ZoneInfo(self.config.timezone))
        return Spend(resolved, start, end, await self.spent(Scope(scope, scope_id, limits), start, end))

    async def _table(self) -> PolicyTable:
        if self.live is not None:
            return self.live
        async with self.db.session() as session:
            return PolicyTable(self.config, await LimitRepository(session).all())

    def _apply(self, stored: dict[tuple[str, str], Limits]) -> None:
        if self.live is not None:
            self.live.replace_stored(stored)
