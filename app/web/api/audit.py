"""The audit log API (JSON API only, not the SDK): ``GET /api/audit`` and ``GET /api/audit/export.csv``.

Platform admins only (the platform has no organization admin role); anyone else gets 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Stream
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.audit.service import DEFAULT_LIMIT, EXPORT_BATCH, MAX_LIMIT, AuditFilter, AuditService, csv_lines
from app.services.audit.views import AuditPage
from app.web.deps import db

_ACTOR = Parameter(default=None, description="Actor email (part of it, case-insensitive) or user id")
_ACTION = Parameter(default=None, description="Action name, or a prefix ending in '.' (e.g. 'user.')")
_ORG = Parameter(default=None, description="Organization id, or GLOBAL for platform-wide events")
_SINCE = Parameter(default=None, description="ISO 8601 date or date-time: events at or after it")
_UNTIL = Parameter(default=None, description="ISO 8601 date or date-time: events before it")


def export_stream(request: Request[Any, Any, Any], actor: Actor, filters: AuditFilter) -> Stream:
    """The CSV of every event matching ``filters``, newest first; each batch is read in its own transaction."""

    async def chunks() -> AsyncIterator[bytes]:
        before: str | None = None
        header = True
        while True:
            async with db(request) as session:
                page = await AuditService(session).page(actor, filters, EXPORT_BATCH, before)
            yield csv_lines(page["events"], header).encode("utf-8")
            header, before = False, page["next_before"]
            if before is None:
                return

    return Stream(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="bifrost-audit.csv"'},
    )


class AuditController(Controller):
    """Read the audit log."""

    path = "/audit"
    tags = ["audit"]

    @get("/")
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        actor_filter: str | None = Parameter(query="actor", default=None, description=_ACTOR.description),
        action: str | None = _ACTION,
        organization_id: str | None = _ORG,
        since: str | None = _SINCE,
        until: str | None = _UNTIL,
        limit: int = Parameter(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Events per page"),
        before: str | None = Parameter(default=None, description="Cursor: next_before of the previous page"),
    ) -> AuditPage:
        """Audit events, newest first, filtered by actor, action, organization and date range (platform admins)."""
        filters = AuditFilter.parse(actor_filter, action, organization_id, since, until)
        async with db(request) as session:
            return await AuditService(session).page(actor, filters, limit, before)

    @get("/export.csv", media_type="text/csv")
    async def export_csv(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        actor_filter: str | None = Parameter(query="actor", default=None, description=_ACTOR.description),
        action: str | None = _ACTION,
        organization_id: str | None = _ORG,
        since: str | None = _SINCE,
        until: str | None = _UNTIL,
    ) -> Stream:
        """Every matching event as CSV (columns: occurred_at, actor_email, actor_id, action, target_type,
        target_id, organization_id, organization_name, ip, details as JSON)."""
        filters = AuditFilter.parse(actor_filter, action, organization_id, since, until)
        actor.require_admin("read the audit log")  # before the response starts: a refusal is a plain 403
        return export_stream(request, actor, filters)


CONTROLLERS: list[ControllerRouterHandler] = [AuditController]
