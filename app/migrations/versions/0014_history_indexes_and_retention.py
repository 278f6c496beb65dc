"""history indexes, declared document indexes, execution retention per organization

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Execution history lists read newest first by ``(created_at, id)``: each filter gets an index ending in
those two columns (issue 17), replacing ``ix_execution_org_created``, ``ix_execution_status`` and
``ix_execution_workflow_name``. ``doc_table_index``: the fields a document table declares as indexed.
``execution_retention``: an organization's own retention of executions (overrides the platform's).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_WHEN = app.models.base.UTCDateTime(timezone=True)
_HISTORY = {
    "ix_execution_created": ["created_at", "id"],
    "ix_execution_org_created": ["organization_id", "created_at", "id"],
    "ix_execution_org_user_created": ["organization_id", "executed_by", "created_at", "id"],
    "ix_execution_status_created": ["status", "created_at", "id"],
    "ix_execution_org_status_created": ["organization_id", "status", "created_at", "id"],
    "ix_execution_workflow_created": ["workflow_name", "created_at", "id"],
    "ix_execution_org_workflow_created": ["organization_id", "workflow_name", "created_at", "id"],
}


def upgrade() -> None:
    op.drop_index("ix_execution_org_created", table_name="execution")
    op.drop_index("ix_execution_status", table_name="execution")
    op.drop_index("ix_execution_workflow_name", table_name="execution")
    for name, columns in _HISTORY.items():
        op.create_index(name, "execution", columns, unique=False)

    op.create_table(
        "doc_table_index",
        sa.Column("table_id", sa.String(36), nullable=False),
        sa.Column("field", sa.String(900), nullable=False),
        sa.Column("index_name", sa.String(63), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["table_id"], ["doc_table.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("table_id", "field"),
        sa.UniqueConstraint("index_name"),
    )
    op.create_table(
        "execution_retention",
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("retention_days", sa.Float(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id"),
    )


def downgrade() -> None:
    op.drop_table("execution_retention")
    op.drop_table("doc_table_index")
    for name in reversed(list(_HISTORY)):
        op.drop_index(name, table_name="execution")
    op.create_index("ix_execution_workflow_name", "execution", ["workflow_name"], unique=False)
    op.create_index("ix_execution_status", "execution", ["status"], unique=False)
    op.create_index("ix_execution_org_created", "execution", ["organization_id", "created_at"], unique=False)
