"""Configuration values and secrets, per organization or global."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.models.base import UTCDateTime, new_id, utcnow


class ConfigEntry(SQLModel, table=True):
    """One key of one organization (``organization_id`` NULL = global).

    ``value`` holds the text form of the value for its ``config_type``
    (``bifrost.enums.ConfigType``): the string itself, JSON text for ``int``,
    ``bool`` and ``json``, and a Fernet token for ``secret`` (the key lives
    outside the database, see ``app.services.secrets``).
    """

    __tablename__ = "config_entry"
    __table_args__ = (
        UniqueConstraint("organization_id", "key", name="uq_config_entry_org_key"),
        # NULLs are distinct in a unique constraint, so global keys need their own partial index.
        Index(
            "uq_config_entry_global_key",
            "key",
            unique=True,
            sqlite_where=text("organization_id IS NULL"),
            postgresql_where=text("organization_id IS NULL"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    key: str = Field(max_length=255)
    config_type: str = Field(max_length=20)
    value: str
    description: str | None = Field(default=None, max_length=2000)
    updated_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
