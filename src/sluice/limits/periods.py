"""Budget periods: day, week (from Monday) and month, starting at local midnight of an IANA time zone.

Boundaries are computed in local wall-clock time and converted to UTC, so a day in Europe/Berlin is 23 or 25
hours long across a DST change and still ends at local midnight. Everything stored is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["day", "week", "month"]


def period_bounds(period: Period, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The [start, end) of the period containing ``now``, in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).replace(tzinfo=None)
    if period == "day":
        start, end = midnight, midnight + timedelta(days=1)
    elif period == "week":
        start = midnight - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    else:
        start = midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return _to_utc(start, tz), _to_utc(end, tz)


def _to_utc(naive_local: datetime, tz: ZoneInfo) -> datetime:
    # A few zones jump their clocks at midnight, so local midnight may not exist or may occur twice; fold=0
    # resolves both with the offset in force before the change, putting the boundary at the change itself.
    return naive_local.replace(tzinfo=tz).astimezone(UTC)


def _key(period: Period, start: datetime) -> str:
    return f"{period}:{start.strftime('%Y%m%dT%H%M')}"


def period_key(period: Period, now: datetime, tz: ZoneInfo) -> str:
    """A stable name for the period containing ``now`` (its UTC start), used in counter keys."""
    return _key(period, period_bounds(period, now, tz)[0])


class Periods:
    """The current period of each kind in one zone, computed once and reused until it ends.

    Admission asks for the period on every call; it changes once a day at most, and computing it through the
    zone costs more than the rest of admission. Each limit store owns one (nothing is shared between stores).
    """

    __slots__ = ("_current", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._current: dict[str, tuple[float, float, str]] = {}  # kind → (start, end, key), epoch seconds

    def current(self, period: Period, now: float) -> tuple[float, float, str]:
        """(start, end, key) of the period containing the epoch time ``now``."""
        cached = self._current.get(period)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached
        start, end = period_bounds(period, datetime.fromtimestamp(now, UTC), self.tz)
        found = (start.timestamp(), end.timestamp(), _key(period, start))
        self._current[period] = found
        return found

    def key_at(self, period: Period, now: float) -> str:
        return self.current(period, now)[2]

    def bounds_at(self, period: Period, now: float) -> tuple[datetime, datetime]:
        start, end, _ = self.current(period, now)
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
