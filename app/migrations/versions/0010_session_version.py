"""session version per user

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Web sessions are signed cookies that carry the user's session version; raising ``user.session_version``
ends every session of that user (logout, password, role or organization change, deactivation).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("session_version")
