"""Executions and their captured logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class Execution(SQLModel, table=True):
    """One run of a workflow or data provider, whatever triggered it."""

    # History lists read newest first, ``(created_at, id)`` being the order and the keyset cursor:
    # each list's filter has an index that also yields that order, so a page costs ~50 rows read
    # whatever the history holds (a scan + sort of 1M rows took 1.4 s on SQLite). ``id`` makes the
    # order total. Admins across organizations use the first; users (org + executed_by), one user's runs
    # across organizations, the status and workflow filters, with and without an organization, the others.
    __table_args__ = (
        Index("ix_execution_created", "created_at", "id"),
        Index("ix_execution_org_created", "organization_id", "created_at", "id"),
        Index("ix_execution_org_user_created", "organization_id", "executed_by", "created_at", "id"),
        Index("ix_execution_user_created", "executed_by", "created_at", "id"),
        Index("ix_execution_status_created", "status", "created_at", "id"),
        Index("ix_execution_org_status_created", "organization_id", "status", "created_at", "id"),
        Index("ix_execution_workflow_created", "workflow_name", "created_at", "id"),
        Index("ix_execution_org_workflow_created", "organization_id", "workflow_name", "created_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(index=True, max_length=36)
    workflow_name: str = Field(max_length=200)
    kind: str = Field(default="workflow", max_length=20)
    organization_id: str | None = Field(default=None, max_length=36)
    executed_by: str = Field(max_length=36)
    executed_by_name: str = Field(default="", max_length=320)
    trigger: str = Field(default="api", max_length=20)
    is_function_key: bool = False
    api_key_id: str | None = Field(default=None, max_length=36)
    status: str = Field(default="Pending", max_length=20)
    input_data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    result: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error_message: str | None = None
    error_type: str | None = Field(default=None, max_length=200)
    error_traceback: str | None = None
    user_error: bool = False
    timeout_seconds: int = 1800
    duration_ms: int | None = None
    sdk_token_hash: str | None = Field(default=None, index=True, max_length=64)
    # The ``bifrost worker`` node that ran it (queue mode, docs/deploy.md); None for the embedded pool.
    node: str | None = Field(default=None, max_length=200)
    # The custom form that started it (trigger "form"); None for the automatic form and other triggers.
    form_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class ExecutionLog(SQLModel, table=True):
    """One captured log line (``logging`` record or a printed line) of an execution."""

    __tablename__ = "execution_log"

    __table_args__ = (Index("ix_execution_log_exec_seq", "execution_id", "seq"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    execution_id: str = Field(foreign_key="execution.id", max_length=36)
    seq: int
    timestamp: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    level: str = Field(max_length=20)
    logger: str = Field(default="", max_length=200)
    message: str


class ExecutionRetention(SQLModel, table=True):
    """An organization's own retention of executions and their logs (overrides the platform's setting).

    ``retention_days`` 0 keeps that organization's history forever.
    """

    __tablename__ = "execution_retention"

    organization_id: str = Field(
        sa_column=Column(String(36), ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True)
    )
    retention_days: float
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
