"""Forms that run workflows (definition storage; pages live in the web app)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class Form(SQLModel, table=True):
    """A form bound to a workflow, with an access level (public, authenticated, role_based).

    ``form_schema`` holds the validated field list (``app.services.forms.schema``);
    ``organization_id`` None means a global form, offered to every organization.
    ``created_by`` is the id of the admin who created it (no foreign key, like
    ``Execution.executed_by``: users are soft-deleted and the record stays).
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    workflow_id: str | None = Field(default=None, index=True, max_length=36)
    form_schema: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    access_level: str = Field(default="role_based", max_length=20)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", index=True, max_length=36)
    is_active: bool = True
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
