"""role grants authoring

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

``role.can_author``: users holding an active role with it may start notebook runs (their own code as
an execution of their organization). False for every existing role: nobody but platform admins runs
notebooks until an admin grants it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("role") as batch:
        batch.add_column(sa.Column("can_author", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("role") as batch:
        batch.drop_column("can_author")
