"""knowledge

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Knowledge (RAG): ``knowledge_namespace`` (per organization or global, with a
version counter for cached matrices), ``knowledge_document``, ``knowledge_chunk``
(passages with float32 embedding bytes and the model that made them) and
``knowledge_job`` (background ingestion of uploaded files).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_GLOBAL_ONLY = "organization_id IS NULL"


def upgrade() -> None:
    op.create_table(
        "knowledge_namespace",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "name", name="uq_knowledge_namespace_org_name"),
    )
    with op.batch_alter_table("knowledge_namespace", schema=None) as batch_op:
        # NULLs are distinct in a unique constraint: global namespaces are kept unique by a partial index.
        batch_op.create_index(
            "uq_knowledge_namespace_global_name",
            ["name"],
            unique=True,
            sqlite_where=sa.text(_GLOBAL_ONLY),
            postgresql_where=sa.text(_GLOBAL_ONLY),
        )

    op.create_table(
        "knowledge_document",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("doc_metadata", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["namespace_id"], ["knowledge_namespace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "key", name="uq_knowledge_document_namespace_key"),
    )
    with op.batch_alter_table("knowledge_document", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_document_namespace_created", ["namespace_id", "created_at"], unique=False)

    op.create_table(
        "knowledge_chunk",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("namespace_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["knowledge_document.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["namespace_id"], ["knowledge_namespace.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledge_chunk", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_chunk_document", ["document_id", "position"], unique=False)
        batch_op.create_index("ix_knowledge_chunk_model", ["embedding_model"], unique=False)
        batch_op.create_index("ix_knowledge_chunk_namespace", ["namespace_id"], unique=False)

    op.create_table(
        "knowledge_job",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("namespace", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("document_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledge_job", schema=None) as batch_op:
        batch_op.create_index("ix_knowledge_job_org_created", ["organization_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("knowledge_job", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_job_org_created")
    op.drop_table("knowledge_job")
    with op.batch_alter_table("knowledge_chunk", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_chunk_namespace")
        batch_op.drop_index("ix_knowledge_chunk_model")
        batch_op.drop_index("ix_knowledge_chunk_document")
    op.drop_table("knowledge_chunk")
    with op.batch_alter_table("knowledge_document", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_document_namespace_created")
    op.drop_table("knowledge_document")
    with op.batch_alter_table("knowledge_namespace", schema=None) as batch_op:
        batch_op.drop_index("uq_knowledge_namespace_global_name")
    op.drop_table("knowledge_namespace")
