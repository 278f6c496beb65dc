"""Organizations: the tenants of one install."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, false
from sqlmodel import Field, SQLModel

from app.models.base import UTCDateTime, new_id, utcnow


class Organization(SQLModel, table=True):
    """A client organization. Soft-deleted by ``is_active=False``."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(index=True, unique=True, max_length=200)
    domain: str | None = Field(default=None, max_length=255)
    is_active: bool = True
    # Users of this organization sign in only through single sign-on (passwords refused; docs/sign-in.md).
    sso_only: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
