"""The audit log: one append-only row per security-relevant event (app/services/audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class AuditEvent(SQLModel, table=True):
    """Who did what, when, from which address, in which organization.

    No foreign keys on purpose: an event outlives what it names (a deleted schedule, a user's
    changed email), so the actor's email and the target's id are copied in. Rows are never updated;
    only retention deletes them.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_occurred", "occurred_at"),
        Index("ix_audit_event_org_occurred", "organization_id", "occurred_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    occurred_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    actor_id: str | None = Field(default=None, max_length=36, index=True)
    actor_email: str | None = Field(default=None, max_length=320)
    action: str = Field(max_length=64, index=True)
    target_type: str | None = Field(default=None, max_length=64)
    target_id: str | None = Field(default=None, max_length=255)
    organization_id: str | None = Field(default=None, max_length=36)
    ip: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
