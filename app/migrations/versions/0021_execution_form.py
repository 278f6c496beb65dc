"""executions: the custom form that started each one

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

"Edit and run" of a run started from a custom form reopens that form with the run's values
(issue 19); a run records which form it came from (no index: it is read with its row only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.add_column(sa.Column("form_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.drop_column("form_id")
