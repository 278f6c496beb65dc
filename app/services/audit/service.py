"""Reading the audit log: filters, pages (newest first, with a cursor) and CSV rows.

Who may read: platform admins, every event (or one organization's). The platform has no organization
admin role (roles are plain groups managed by platform admins), so nobody else reads the log; a regular
user gets 403. When an organization admin role exists, :meth:`AuditService._scope` is the one place to
narrow its holders to their organization's events.
"""

from __future__ import annotations

import builtins
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.audit import AuditEvent
from app.models.organization import Organization
from app.services.actor import Actor
from app.services.audit.views import AuditEventView, AuditPage
from app.services.errors import InvalidInputError

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
EXPORT_BATCH = 1000
CSV_COLUMNS = (
    "occurred_at",
    "actor_email",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "organization_id",
    "organization_name",
    "ip",
    "details",
)
GLOBAL = "GLOBAL"  # organization filter value for platform-wide events


def parse_time(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date or date-time (``2026-12-01`` or ``2026-12-01T09:00:00+00:00``); 422 naming ``field``."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError.field(field, f"{value!r} is not an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class AuditFilter:
    """What to show. Empty fields do not filter.

    Attributes:
        actor: An actor's email (case-insensitive, part of it matches) or exact user id.
        action: An action name, or a prefix ending in ``.`` (``user.`` = every user change).
        organization_id: One organization's events, or ``GLOBAL`` for platform-wide ones.
        since: Events at or after this moment.
        until: Events before this moment (a bare date means its start: use the next day to include it).
    """

    actor: str | None = None
    action: str | None = None
    organization_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(
        cls,
        actor: str | None = None,
        action: str | None = None,
        organization_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AuditFilter:
        """Filters from query-string text; bad dates or an inverted range are a 422 naming the field."""
        start, end = parse_time(since, "since"), parse_time(until, "until")
        if start and end and end <= start:
            raise InvalidInputError.field("until", "must be after since")
        for name, value in (("actor", actor), ("action", action), ("organization_id", organization_id)):
            if value is not None and len(value) > 320:
                raise InvalidInputError.field(name, "must be at most 320 characters")
        return cls(
            actor=(actor or "").strip() or None,
            action=(action or "").strip() or None,
            organization_id=(organization_id or "").strip() or None,
            since=start,
            until=end,
        )


def event_view(event: AuditEvent, org_names: dict[str, str]) -> AuditEventView:
    """The API shape of an event."""
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_email": event.actor_email,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "organization_id": event.organization_id,
        "organization_name": org_names.get(event.organization_id or ""),
        "ip": event.ip,
        "details": event.details,
    }


def _cell(value: Any) -> str:
    """One CSV cell; text a spreadsheet would run as a formula is prefixed with a quote."""
    if value is None:
        return ""
    if isinstance(value, dict):
        import json

        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(views: Iterable[AuditEventView], header: bool) -> str:
    """CSV text of ``views`` (with the header line first when ``header``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for view in views:
        writer.writerow([_cell(view[c]) for c in CSV_COLUMNS])  # type: ignore[literal-required]
    return buffer.getvalue()


class AuditService:
    """Read the audit log (appending is :func:`app.services.audit.events.record`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _scope(self, actor: Actor, stmt: Select[Any]) -> Select[Any]:
        actor.require_admin("read the audit log")
        return stmt

    def _filtered(self, actor: Actor, filters: AuditFilter) -> Select[Any]:
        stmt = self._scope(actor, select(AuditEvent))
        if filters.actor:
            needle = filters.actor.lower()
            stmt = stmt.where(
                or_(col(AuditEvent.actor_id) == filters.actor, col(AuditEvent.actor_email).contains(needle))
            )
        if filters.action:
            if filters.action.endswith("."):
                stmt = stmt.where(col(AuditEvent.action).startswith(filters.action))
            else:
                stmt = stmt.where(col(AuditEvent.action) == filters.action)
        if filters.organization_id == GLOBAL:
            stmt = stmt.where(col(AuditEvent.organization_id).is_(None))
        elif filters.organization_id:
            stmt = stmt.where(col(AuditEvent.organization_id) == filters.organization_id)
        if filters.since:
            stmt = stmt.where(col(AuditEvent.occurred_at) >= filters.since)
        if filters.until:
            stmt = stmt.where(col(AuditEvent.occurred_at) < filters.until)
        return stmt.order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id).desc())

    async def _after_cursor(self, stmt: Select[Any], before: str | None) -> Select[Any]:
        if not before:
            return stmt
        anchor = await self.session.get(AuditEvent, before) if len(before) <= 36 else None
        if anchor is None:
            raise InvalidInputError.field("before", f"no audit event {before!r} (pass next_before of a previous page)")
        return stmt.where(
            or_(
                col(AuditEvent.occurred_at) < anchor.occurred_at,
                and_(col(AuditEvent.occurred_at) == anchor.occurred_at, col(AuditEvent.id) < anchor.id),
            )
        )

    async def _org_names(self, events: builtins.list[AuditEvent]) -> dict[str, str]:
        ids = sorted({e.organization_id for e in events if e.organization_id})
        if not ids:
            return {}
        stmt = select(col(Organization.id), col(Organization.name)).where(col(Organization.id).in_(ids))
        return {i: n for i, n in (await self.session.execute(stmt)).all()}

    async def page(
        self, actor: Actor, filters: AuditFilter, limit: int = DEFAULT_LIMIT, before: str | None = None
    ) -> AuditPage:
        """Events matching ``filters``, newest first, at most ``limit``, older than the event ``before``.

        Raises:
            PermissionDeniedError: Not a platform admin.
            InvalidInputError: ``limit`` out of 1..1000, or an unknown ``before`` cursor.
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError.field("limit", f"must be between 1 and {MAX_LIMIT}")
        stmt = await self._after_cursor(self._filtered(actor, filters), before)
        rows = builtins.list((await self.session.execute(stmt.limit(limit + 1))).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        names = await self._org_names(rows)
        return {"events": [event_view(e, names) for e in rows], "next_before": rows[-1].id if more else None}
