"""document tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

``doc_table`` (named tables per organization and app, or global) and ``document``
(JSON documents; JSONB on Postgres, with a GIN index for equality filters).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import app.models.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_GLOBAL_ONLY = "organization_id IS NULL"


def _document_json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "doc_table",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("app", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("table_schema", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "app", "name", name="uq_doc_table_org_app_name"),
    )
    with op.batch_alter_table("doc_table", schema=None) as batch_op:
        # NULLs are distinct in a unique constraint: global tables are kept unique by a partial index.
        batch_op.create_index(
            "uq_doc_table_global_app_name",
            ["app", "name"],
            unique=True,
            sqlite_where=sa.text(_GLOBAL_ONLY),
            postgresql_where=sa.text(_GLOBAL_ONLY),
        )

    op.create_table(
        "document",
        sa.Column("table_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("data", _document_json(), nullable=False),
        sa.Column("dates", _document_json(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["table_id"], ["doc_table.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("table_id", "id"),
    )
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.create_index("ix_document_table_created", ["table_id", "created_at"], unique=False)
        # Postgres: a GIN index for ``data @> ...`` (equality filters). SQLite has no such index
        # type: there it is an always-empty partial index (WHERE 0) that costs nothing.
        batch_op.create_index(
            "ix_document_data_gin",
            ["data"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"data": "jsonb_path_ops"},
            sqlite_where=sa.text("0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_index("ix_document_data_gin")
        batch_op.drop_index("ix_document_table_created")
    op.drop_table("document")
    with op.batch_alter_table("doc_table", schema=None) as batch_op:
        batch_op.drop_index("uq_doc_table_global_app_name")
    op.drop_table("doc_table")
