"""Budget periods start at local midnight of the configured zone, DST included, and are stored in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from sluice.limits.periods import period_bounds, period_key

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")


def test_tokyo_day_turns_over_at_local_midnight() -> None:
    before = datetime(2026, 3, 10, 14, 59, 59, tzinfo=UTC)  # 23:59:59 in Tokyo
    after = before + timedelta(seconds=1)  # 00:00:00 in Tokyo
    start_before, end_before = period_bounds("day", before, TOKYO)
    start_after, _ = period_bounds("day", after, TOKYO)
    assert start_before == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    assert end_before == start_after == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert period_key("day", before, TOKYO) != period_key("day", after, TOKYO)


def test_berlin_day_is_23_hours_when_clocks_go_forward() -> None:
    moment = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # DST starts at 02:00 local on 29 March 2026
    start, end = period_bounds("day", moment, BERLIN)
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET
    assert end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert end - start == timedelta(hours=23)


def test_berlin_day_is_25_hours_when_clocks_go_back() -> None:
    moment = datetime(2026, 10, 25, 12, 0, tzinfo=UTC)
    start, end = period_bounds("day", moment, BERLIN)
    assert end - start == timedelta(hours=25)
    assert end.astimezone(BERLIN).hour == 0


def test_week_starts_monday_and_month_on_the_first() -> None:
    wednesday = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    week_start, week_end = period_bounds("week", wednesday, UTC)  # type: ignore[arg-type]
    assert week_start == datetime(2026, 11, 23, tzinfo=UTC) and week_end == datetime(2026, 11, 30, tzinfo=UTC)
    month_start, month_end = period_bounds("month", datetime(2026, 12, 31, 22, 59, tzinfo=UTC), BERLIN)
    assert month_start.astimezone(BERLIN) == datetime(2026, 12, 1, tzinfo=BERLIN)
    assert month_end.astimezone(BERLIN) == datetime(2027, 1, 1, tzinfo=BERLIN)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["day", "week", "month"]),
    st.sampled_from(["Europe/Berlin", "Asia/Tokyo", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_every_moment_lies_in_its_period_and_periods_tile_time(moment: datetime, period: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    start, end = period_bounds(period, moment, tz)  # type: ignore[arg-type]
    assert start <= moment < end
    assert start.tzinfo == UTC and end.tzinfo == UTC
    next_start, _ = period_bounds(period, end, tz)  # type: ignore[arg-type]
    assert next_start == end
    assert start.astimezone(tz).hour == 0 or zone == "Australia/Lord_Howe"
