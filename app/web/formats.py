"""How pages write values a person reads: one date-and-time format, always with its zone.

Registered as Jinja filters by :func:`app.web.markdown.register_filters`, so every page shows
"2026-12-06 18:20:43 UTC" the same way (issue 19: one line said UTC and the next did not).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def when(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS UTC`` (naive values are UTC, as the database stores them).

    Args:
        value: A ``datetime`` or an ISO 8601 string; None or empty gives "".

    Returns:
        The formatted time, or the value unchanged when it is not a time.
    """
    if value is None or value == "":
        return ""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(moment, datetime):
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
