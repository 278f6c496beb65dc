"""executions: the worker node that ran each one

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06

With ``BIFROST_QUEUE=postgres`` runs go to ``bifrost worker`` nodes (issue 18): the node that
took a run writes its name here with ``Running``, so a run lost with its node names that node.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.add_column(sa.Column("node", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution") as batch:
        batch.drop_column("node")
