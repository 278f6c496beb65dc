"""Execution history queries: filters, newest first, pages by offset or by keyset cursor.

Every list reads newest first in the order ``(created_at DESC, id DESC)``, and each filter has an
index on ``(<filter columns>, created_at, id)`` (``app/models/execution.py``), so the database walks
the index from the newest matching row and stops after one page: a page costs the same at a million
executions as at ten thousand. A cursor names the last row of a page; the next page starts strictly
after it, so it costs one page too, however deep (an offset still reads every row it skips).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select, true, union_all
from sqlmodel import col

from app.models import Execution
from app.services.actor import Actor
from app.services.errors import InvalidInputError
from bifrost.enums import ExecutionStatus

MAX_LIST_LIMIT = 1000
MAX_OFFSET = 1_000_000_000  # beyond any real history, and inside a 64-bit SQL integer
# SQLite allows 500 arms in one compound SELECT; the "last runs" query is cut into statements of this many.
_ARMS_PER_STATEMENT = 200
_KINDS = ("workflow", "data_provider")


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts right after it (older)."""

    created_at: datetime
    id: str


def encode_cursor(execution: Execution) -> str:
    """The opaque cursor that continues a list after ``execution``."""
    raw = json.dumps([execution.created_at.isoformat(), execution.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> Cursor:
    """Parse a cursor made by :func:`encode_cursor`.

    Raises:
        InvalidInputError: Naming ``cursor`` when it was not made by this server.
    """
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        created, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or not isinstance(row_id, str) or not 0 < len(row_id) <= 36:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError.field(
            "cursor", "not a cursor of this list; pass the X-Next-Cursor value of the previous page"
        ) from None
    return Cursor(moment, row_id)


def parse_status(value: str | None) -> str | None:
    """Accept ``Failed``, ``FAILED``, ``failed`` (and enum members) for a status filter."""
    if value is None or value == "":
        return None
    raw = getattr(value, "value", value)
    for status in ExecutionStatus:
        if str(raw).lower() in (status.value.lower(), status.name.lower()):
            return status.value
    raise InvalidInputError.field(
        "status", f"unknown status {value!r}; use one of {', '.join(s.name for s in ExecutionStatus)}"
    )


def parse_when(value: str | datetime | date | None, field: str, end: bool) -> datetime | None:
    """An ISO date or date-time filter bound (a bare end date includes that whole day)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
        except ValueError:
            raise InvalidInputError.field(field, f"not an ISO date or date-time: {value!r}") from None
    if not isinstance(value, datetime):
        moment = datetime.combine(value, time.min)
        return moment + timedelta(days=1) - timedelta(microseconds=1) if end else moment
    return value


def visible(actor: Actor) -> Any:
    """What the actor may see: admins everything (or their acting organization), users their own runs."""
    if actor.is_superuser:
        return col(Execution.organization_id) == actor.acting_org_id if actor.acting_org_id else true()
    return (col(Execution.organization_id) == actor.acting_org_id) & (col(Execution.executed_by) == actor.user_id)


def _newest_first(stmt: Select[Any]) -> Select[Any]:
    return stmt.order_by(col(Execution.created_at).desc(), col(Execution.id).desc())


def before_cursor(cursor: Cursor) -> Any:
    """Rows newer than the cursor's (a page back toward the newest)."""
    created = col(Execution.created_at)
    return and_(
        created >= cursor.created_at,
        or_(created > cursor.created_at, col(Execution.id) > cursor.id),
    )


def after_cursor(cursor: Cursor) -> Any:
    """Rows older than the cursor's, in the list order.

    Spelled as a range on ``created_at`` plus the tie-break rather than a row-value comparison:
    both databases then bound the index walk by ``created_at`` directly.
    """
    created = col(Execution.created_at)
    return and_(
        created <= cursor.created_at,
        or_(created < cursor.created_at, col(Execution.id) < cursor.id),
    )


def list_statement(
    actor: Actor,
    *,
    workflow_name: str | None = None,
    status: str | None = None,
    start_date: str | datetime | date | None = None,
    end_date: str | datetime | date | None = None,
    executed_by: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    before: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Select[Any]:
    """The SELECT of one page of visible executions, newest first, with the spec's filters.

    ``cursor`` continues with older rows; ``before`` goes back to the rows just newer than the one it
    names, selected oldest first (the caller reverses them), so both directions walk the index.

    Raises:
        InvalidInputError: A bad limit, offset, status, date, kind or cursor (naming it); a cursor
            together with an offset.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidInputError.field("limit", f"must be between 1 and {MAX_LIST_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInputError.field("offset", f"must be between 0 and {MAX_OFFSET}")
    if kind is not None and kind not in _KINDS:
        raise InvalidInputError.field("kind", f"must be one of {', '.join(_KINDS)}")
    position = decode_cursor(cursor) if cursor else None
    back = decode_cursor(before) if before else None
    if (position is not None or back is not None) and offset:
        raise InvalidInputError.field("offset", "give either a cursor or an offset, not both")
    if position is not None and back is not None:
        raise InvalidInputError.field("before", "give either cursor (older rows) or before (newer rows), not both")
    stmt = select(Execution).where(visible(actor))
    if workflow_name:
        stmt = stmt.where(col(Execution.workflow_name) == workflow_name)
    status_value = parse_status(status)
    if status_value:
        stmt = stmt.where(col(Execution.status) == status_value)
    start = parse_when(start_date, "start_date", end=False)
    end = parse_when(end_date, "end_date", end=True)
    if start:
        stmt = stmt.where(col(Execution.created_at) >= start)
    if end:
        stmt = stmt.where(col(Execution.created_at) <= end)
    if executed_by:
        stmt = stmt.where(col(Execution.executed_by) == executed_by)
    if kind:
        stmt = stmt.where(col(Execution.kind) == kind)
    if position is not None:
        stmt = stmt.where(after_cursor(position))
    if back is not None:
        oldest_first = stmt.where(before_cursor(back)).order_by(col(Execution.created_at), col(Execution.id))
        return oldest_first.limit(limit)
    return _newest_first(stmt).limit(limit).offset(offset)


def recent_statements(actor: Actor, workflow_names: builtins.list[str], per_workflow: int) -> list[Select[Any]]:
    """SELECTs of the newest ``per_workflow`` visible runs of each workflow (one index walk per name).

    A window function (``row_number() OVER (PARTITION BY workflow_name ...)``) numbered every run of
    those workflows, 2 s at a million executions; a UNION ALL of one LIMITed walk per workflow reads
    ``per_workflow`` rows each.
    """
    names = sorted(set(workflow_names))
    statements = []
    for first in range(0, len(names), _ARMS_PER_STATEMENT):
        arms = [
            _newest_first(select(Execution).where(visible(actor), col(Execution.workflow_name) == name))
            .limit(per_workflow)
            .subquery()
            for name in names[first : first + _ARMS_PER_STATEMENT]
        ]
        statements.append(union_all(*(select(arm) for arm in arms)))  # type: ignore[arg-type]
    return statements  # type: ignore[return-value]
