"""API shapes of the audit domain (TypedDicts: plain dicts at run time, documented in ``/schema``)."""

from __future__ import annotations

from typing import Any, TypedDict


class AuditEventView(TypedDict):
    """One audit event."""

    id: str
    occurred_at: str
    actor_id: str | None
    actor_email: str | None
    action: str
    target_type: str | None
    target_id: str | None
    organization_id: str | None
    organization_name: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(TypedDict):
    """A page of events, newest first; ``next_before`` is the cursor of the next (older) page, or None."""

    events: list[AuditEventView]
    next_before: str | None
