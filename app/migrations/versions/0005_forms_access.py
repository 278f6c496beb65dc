"""forms access

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Forms get ``created_by`` and ``updated_at`` (existing rows take their ``created_at``).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("form", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        batch_op.add_column(sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=True))
    # Added nullable, filled, then made NOT NULL: forms saved before this revision keep a valid row.
    op.execute("UPDATE form SET updated_at = created_at")
    with op.batch_alter_table("form", schema=None) as batch_op:
        batch_op.alter_column("updated_at", existing_type=app.models.base.UTCDateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("form", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("created_by")
