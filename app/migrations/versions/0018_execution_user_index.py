"""history: a user's runs across organizations

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

A platform admin acting across organizations who filters the history by one user walked
``(created_at, id)`` and skipped everyone else's rows (issue 17): ``(executed_by, created_at, id)``.
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_execution_user_created", "execution", ["executed_by", "created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_execution_user_created", table_name="execution")
