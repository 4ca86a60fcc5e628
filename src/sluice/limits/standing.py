"""Where a scope stands: the limits admission applies to it, where they come from, and its spend in the current
budget period. What a member is shown of their own key, user and workspace (``GET /admin/v1/me/limits``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sluice.accounting.service import Accounting
from sluice.limits.periods import period_bounds
from sluice.limits.policy import Limits, PolicyTable, Scope, ScopeType, Source
from sluice.limits.store import SpendUnavailable


@dataclass(frozen=True, slots=True)
class Standing:
    scope: ScopeType
    scope_id: str
    limits: Limits
    source: Source
    period_start: datetime
    period_end: datetime
    spent_nanos: int | None  # None: the usage records cannot be read right now

    @property
    def remaining_nanos(self) -> int | None:
        if self.limits.budget_nanos is None or self.spent_nanos is None:
            return None
        return max(0, self.limits.budget_nanos - self.spent_nanos)


async def standing(
    policy: PolicyTable, accounting: Accounting, timezone: str, scope: ScopeType, scope_id: str, role: str | None
) -> Standing:
    """``role``: the role whose default applies (the caller's own, for their key or user scope)."""
    limits, source = policy.resolve(scope, scope_id, role)
    start, end = period_bounds(limits.period, datetime.now(UTC), ZoneInfo(timezone))
    try:
        spent: int | None = await accounting.spent(Scope(scope, scope_id, limits), start, end)
    except SpendUnavailable:
        spent = None
    return Standing(scope, scope_id, limits, source, start, end, spent)
