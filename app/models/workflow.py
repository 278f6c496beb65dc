"""Workflow and data provider metadata synced from the workspace, and workspace import errors."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow

_ID_NAMESPACE = uuid.UUID("6f1c3a52-9d4e-4b7a-9a0e-2f5b8c1d7e40")


def stable_workflow_id(kind: str, name: str) -> str:
    """Return the id a workflow keeps across syncs and restarts (derived from kind and name)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


class Workflow(SQLModel, table=True):
    """A workflow or data provider found in the workspace.

    ``is_active`` is False when the definition disappeared from the workspace
    (executions keep pointing at it).
    """

    __table_args__ = (UniqueConstraint("kind", "name", name="uq_workflow_kind_name"),)

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(default="workflow", max_length=20)
    name: str = Field(index=True, max_length=200)
    description: str | None = None
    category: str = Field(default="General", max_length=200)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    execution_mode: str = Field(default="async", max_length=10)
    execution_mode_explicit: bool = False
    timeout_seconds: int = 1800
    schedule: str | None = Field(default=None, max_length=200)
    endpoint_enabled: bool = False
    allowed_methods: list[str] = Field(default_factory=lambda: ["POST"], sa_column=Column(JSONType, nullable=False))
    public_endpoint: bool = False
    is_tool: bool = False
    tool_description: str | None = None
    time_saved: int = 0
    cache_ttl_seconds: int = 300
    parameters: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    params_schema: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    source_file: str | None = None
    # What the decorator declares (synced from scans; admins override in ``workflow_access``).
    access: str = Field(default="everyone", max_length=20, sa_column_kwargs={"server_default": "everyone"})
    access_roles: list[str] = Field(
        default_factory=list, sa_column=Column(JSONType, nullable=False, server_default="[]")
    )
    needs_approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    organization_id: str | None = Field(default=None, foreign_key="organization.id", index=True, max_length=36)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class WorkspaceError(SQLModel, table=True):
    """A workspace file that failed to import (or a duplicate name), as of the last sync."""

    __tablename__ = "workspace_error"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    file: str = Field(max_length=1000)
    error: str
    traceback: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
