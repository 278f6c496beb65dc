"""Cron expressions of schedules: parsing (with the reason when one is refused) and walking their firings.

Split from :mod:`app.services.executions.schedules` (which re-exports these names) to keep modules small.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from app.services.errors import InvalidInputError, whole_number

# Upper bound when walking the firings missed during a long downtime (a per-second cron over a week).
MAX_MISSED_WALK = 100_000
_FIELDS_5 = ("minute", "hour", "day", "month", "day_of_week")
_FIELDS_6 = ("second", *_FIELDS_5)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 (and 7) is Sunday
_WEEKDAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


# ----- cron expressions ---------------------------------------------------------------------------
def _weekday(token: str) -> int:
    token = token.strip().lower()
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    if token in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(token)
    day = whole_number(token, max_digits=2)
    if day is not None and day <= 7:
        return day % 7
    raise ValueError(f"weekday {token!r} is not 0-7 or sun..sat")


def _weekdays(field: str) -> str:
    """Translate a cron weekday field to APScheduler's, whose numbers start at Monday.

    Cron counts 0 (or 7) as Sunday; APScheduler 3 counts 0 as Monday, so ``0 9 * * 1`` would fire on
    Tuesdays if passed through. Every form (``*/2``, ``1-5``, ``mon-fri/2``, lists) is expanded to
    the set of days and handed over by name.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = whole_number(step_text, max_digits=3) if step_text else 1
        if step is None or step < 1:
            raise ValueError(f"step {step_text!r} must be a whole number of at least 1")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _weekday(start), _weekday(end)
            if end.strip() == "7":
                last = 7  # "5-7" is Friday to Sunday
            if last < first:
                raise ValueError(f"range {base!r} runs backwards")
        else:
            first = _weekday(base)
            last = 6 if step_text else first  # "1/2": from Monday every other day
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in (1, 2, 3, 4, 5, 6, 0) if day in days)


def zone(timezone: Any) -> ZoneInfo:
    """The IANA time zone named ``timezone``; InvalidInputError naming ``timezone`` otherwise."""
    if not isinstance(timezone, str) or not timezone.strip():
        raise InvalidInputError.field("timezone", "must be an IANA time zone name such as 'UTC' or 'Europe/Paris'")
    try:
        return ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError.field("timezone", f"unknown time zone {timezone!r}") from None


def build_trigger(cron: Any, timezone: Any = "UTC") -> BaseTrigger:
    """Parse a cron expression into an APScheduler trigger, or say exactly what is wrong with it.

    Five fields are ``minute hour day month weekday`` (standard cron, weekday 0 or 7 = Sunday); six
    fields put ``second`` first. When both the day and the weekday are restricted (neither starts
    with ``*``), the expression fires when EITHER matches, as classic cron does: ``0 9 1 * 1`` runs
    on the 1st of the month and on every Monday. APScheduler alone would require both, so such an
    expression becomes an ``OrTrigger`` of a day trigger and a weekday trigger.

    Raises:
        InvalidInputError: naming ``cron`` (with the offending field) or ``timezone``.
    """
    tz = zone(timezone)
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidInputError.field("cron", "must be a cron expression such as '0 9 * * *'")
    if len(cron) > 200:
        raise InvalidInputError.field("cron", "must be at most 200 characters")
    parts = cron.split()
    if len(parts) not in (5, 6):
        raise InvalidInputError.field(
            "cron",
            f"has {len(parts)} fields; use 5 (minute hour day month weekday) or 6 (second minute hour day month weekday)",
        )
    values = dict(zip(_FIELDS_6 if len(parts) == 6 else _FIELDS_5, parts, strict=True))
    for name, value in values.items():  # field by field, so the reason names the first one at fault
        try:
            if name == "day_of_week":
                values[name] = _weekdays(value)
            else:
                CronTrigger(timezone=tz, **{name: value})
        except ValueError as exc:
            reason = re.sub(r"^Error validating expression '[^']*': ", "", str(exc))
            raise InvalidInputError.field("cron", f"{name.replace('_', ' ')} field {value!r}: {reason}") from None
    try:
        if _restricted(values["day"]) and _restricted(values["day_of_week"]):
            by_day = CronTrigger(timezone=tz, **{**values, "day_of_week": "*"})
            by_weekday = CronTrigger(timezone=tz, **{**values, "day": "*"})
            return OrTrigger([by_day, by_weekday])
        return CronTrigger(timezone=tz, **values)
    except ValueError as exc:
        raise InvalidInputError.field("cron", str(exc)) from None


def _restricted(field: str) -> bool:
    """Whether a day or weekday field limits the days (classic cron: a field starting with ``*`` does not)."""
    return not field.startswith("*")


def next_fire(trigger: BaseTrigger, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (UTC), or None when the expression never fires again."""
    moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return moment.astimezone(ZoneInfo("UTC")) if moment else None


def fire_times(trigger: BaseTrigger, first: datetime, until: datetime) -> Iterator[datetime]:
    """Every firing from ``first`` (included when it is one) up to ``until`` (included), oldest first."""
    moment: datetime | None = trigger.get_next_fire_time(None, first)
    walked = 0
    while moment is not None and moment <= until and walked < MAX_MISSED_WALK:
        yield moment.astimezone(ZoneInfo("UTC"))
        walked += 1
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))


def checked_next_run(cron: Any, timezone: Any, now: datetime) -> datetime:
    """Validate ``cron`` in ``timezone`` and return its next firing after ``now`` (422 if it never fires)."""
    moment = next_fire(build_trigger(cron, timezone), now)
    if moment is None:
        raise InvalidInputError.field("cron", f"{cron!r} never fires (no date matches it)")
    return moment
