"""Executions and their captured logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class Execution(SQLModel, table=True):
    """One run of a workflow or data provider, whatever triggered it."""

    __table_args__ = (
        Index("ix_execution_org_created", "organization_id", "created_at"),
        Index("ix_execution_status", "status"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(index=True, max_length=36)
    workflow_name: str = Field(index=True, max_length=200)
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
