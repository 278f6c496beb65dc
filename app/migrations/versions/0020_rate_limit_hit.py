"""rate_limit_hit: rate-limit counts shared by several servers

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06

With ``BIFROST_RATE_LIMITS=database`` (the default when live events go through Postgres) every server
counts sign-in attempts, public endpoint and form calls and notebook log posts here (issue 18), so an
address gets one budget whichever server answers. One row per key, reset each minute.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hit",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_hit")
