"""Who may run a workflow (admin overrides of its declared policy) and the approvals runs wait for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, false
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, utcnow


class WorkflowAccess(SQLModel, table=True):
    """A platform admin's settings for one workflow, kept apart from what its decorator declares.

    Keyed by the workflow's stable id (UUID5 of kind and name), with no foreign key: a workspace
    sync never writes this table, so a re-sync (or a file that disappears and comes back) keeps
    the admin's choice. A None field means "as the decorator says".
    """

    __tablename__ = "workflow_access"

    workflow_id: str = Field(primary_key=True, max_length=36)
    access: str | None = Field(default=None, max_length=20)
    roles: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    # None: every organization; a list of organization ids: only runs in those.
    organizations: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    needs_approval: bool | None = None
    approver_role: str | None = Field(default=None, max_length=200)
    allow_self_approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    schedules_skip_approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    updated_by: str | None = Field(default=None, max_length=36)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ExecutionApproval(SQLModel, table=True):
    """The approval an ``AwaitingApproval`` execution waits for, and how it was decided.

    Written in the same transaction as the execution; the approver rules of the moment of the
    request are copied in, so a later policy change does not let someone else decide it.
    """

    __tablename__ = "execution_approval"
    __table_args__ = (Index("ix_execution_approval_status_expires", "status", "expires_at"),)

    execution_id: str = Field(foreign_key="execution.id", primary_key=True, max_length=36)
    workflow_id: str = Field(max_length=36)
    workflow_name: str = Field(max_length=200)
    organization_id: str | None = Field(default=None, max_length=36, index=True)
    requested_by: str = Field(max_length=36)
    requested_by_name: str = Field(default="", max_length=320)
    trigger: str = Field(default="api", max_length=20)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    approver_role: str | None = Field(default=None, max_length=200)
    allow_self_approval: bool = False
    # waiting, approved, rejected, expired, cancelled
    status: str = Field(default="waiting", max_length=20)
    requested_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    decided_by: str | None = Field(default=None, max_length=36)
    decided_by_name: str | None = Field(default=None, max_length=320)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    reason: str | None = None
