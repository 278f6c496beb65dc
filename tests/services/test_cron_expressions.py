"""Cron expressions as users write them: cron weekday numbering and the classic day OR weekday rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.services.errors import InvalidInputError
from app.services.executions.schedules import build_trigger, checked_next_run, fire_times, next_fire


def _firings(cron: str, start: datetime, end: datetime, timezone: str = "UTC") -> list[datetime]:
    return list(fire_times(build_trigger(cron, timezone), start, end))


def test_weekday_one_is_monday_and_zero_and_seven_are_sunday() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)  # a Sunday
    assert next_fire(build_trigger("0 9 * * 1"), start) == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert next_fire(build_trigger("0 9 * * 0"), start) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert next_fire(build_trigger("0 9 * * 7"), start) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert next_fire(build_trigger("0 9 * * mon-fri"), datetime(2026, 11, 7, tzinfo=UTC)) == datetime(
        2026, 11, 9, 9, tzinfo=UTC
    )


def test_day_and_weekday_both_restricted_fire_when_either_matches() -> None:
    # 1st of the month OR every Monday, in November 2026 (Mondays: 2, 9, 16, 23, 30).
    days = [
        moment.day
        for moment in _firings("0 9 1 * 1", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, 23, tzinfo=UTC))
    ]
    assert days == [1, 2, 9, 16, 23, 30, 1]


def test_a_day_field_starting_with_a_star_keeps_the_and_rule() -> None:
    # Mondays on odd days of the month only: 9, 23 (2 16 30 are even).
    days = [
        moment.day
        for moment in _firings("0 9 */2 * 1", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC))
    ]
    assert days == [9, 23]


def test_only_one_restricted_field_behaves_as_before() -> None:
    november = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC))
    assert [m.day for m in _firings("30 8 15 * *", *november)] == [15]
    assert [m.day for m in _firings("30 8 * * fri", *november)] == [6, 13, 20, 27]


def test_the_or_rule_applies_with_seconds_and_time_zones() -> None:
    firings = _firings(
        "0 0 9 13 * fri",
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 30, 23, tzinfo=UTC),
        timezone="Europe/Paris",
    )
    # Fridays 6, 13, 20, 27 (13 is both): 09:00 Paris is 08:00 UTC in November.
    assert [(m.day, m.hour) for m in firings] == [(6, 8), (13, 8), (20, 8), (27, 8)]


def test_an_or_expression_that_can_fire_is_accepted_even_if_the_day_alone_never_would() -> None:
    # February 30th never exists, but every Monday in February does: classic cron fires on Mondays.
    moment = checked_next_run("0 0 30 2 1", "UTC", datetime(2026, 11, 29, tzinfo=UTC))
    assert moment == datetime(2027, 2, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError) as refused:
        checked_next_run("0 0 30 2 *", "UTC", datetime(2026, 11, 29, tzinfo=UTC))
    assert "never fires" in str(refused.value)


@pytest.mark.parametrize(
    ("cron", "named"),
    [("0 9 32 * 1", "day field '32'"), ("0 9 1 * 8", "day of week field '8'"), ("0 9 1 * mon-sun/0", "day of week")],
)
def test_invalid_fields_are_named_in_or_expressions_too(cron: str, named: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        build_trigger(cron)
    assert named in str(refused.value)
