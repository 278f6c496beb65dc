"""Document tables: named collections of JSON documents, per organization (and app) or global."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow

# JSONB on Postgres (indexable, compared by value); JSON text queried with JSON1 on SQLite.
DocumentJSON: Any = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class DocTable(SQLModel, table=True):
    """A table of documents.

    ``organization_id`` NULL means global. ``app`` is ``""`` for tables outside any
    application: an empty string rather than NULL so that the unique constraint
    sees two app-less tables of the same name as duplicates.
    """

    __tablename__ = "doc_table"
    __table_args__ = (
        UniqueConstraint("organization_id", "app", "name", name="uq_doc_table_org_app_name"),
        # NULLs are distinct in a unique constraint, so global tables need their own partial index.
        Index(
            "uq_doc_table_global_app_name",
            "app",
            "name",
            unique=True,
            sqlite_where=text("organization_id IS NULL"),
            postgresql_where=text("organization_id IS NULL"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    app: str = Field(default="", max_length=100)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    table_schema: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class Document(SQLModel, table=True):
    """One JSON document; ``id`` is unique within its table (user-provided or a UUID).

    ``dates`` mirrors the ISO-8601 date strings found in ``data`` (same key paths,
    objects only) as UTC epoch microseconds, so that date comparisons are numeric
    and identical on every database. It is maintained by the service on every write.
    """

    __tablename__ = "document"
    __table_args__ = (
        Index("ix_document_table_created", "table_id", "created_at"),
        # Equality filters compile to ``data @> {...}`` on Postgres: a GIN index serves them.
        # SQLite has no such index type; there it is an always-empty partial index (WHERE 0),
        # which costs nothing and keeps models and migrations identical on both databases.
        Index(
            "ix_document_data_gin",
            "data",
            postgresql_using="gin",
            postgresql_ops={"data": "jsonb_path_ops"},
            sqlite_where=text("0"),
        ),
    )

    table_id: str = Field(
        sa_column=Column(String(36), ForeignKey("doc_table.id", ondelete="CASCADE"), primary_key=True)
    )
    id: str = Field(sa_column=Column(String(255), primary_key=True))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(DocumentJSON, nullable=False))
    dates: dict[str, Any] | None = Field(default=None, sa_column=Column(DocumentJSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class DocTableIndex(SQLModel, table=True):
    """A document field a table declares as indexed, and the name of the database index serving it.

    The index itself is created and dropped by :mod:`app.services.tables.indexes` (an expression index
    limited to the table's documents), so it is not part of the models' metadata.
    """

    __tablename__ = "doc_table_index"

    table_id: str = Field(
        sa_column=Column(String(36), ForeignKey("doc_table.id", ondelete="CASCADE"), primary_key=True)
    )
    field: str = Field(sa_column=Column(String(900), primary_key=True))
    index_name: str = Field(sa_column=Column(String(63), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
