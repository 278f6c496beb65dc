"""api key scope

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

An API key may carry a scope (``notebook``: only what a notebook kernel needs, app/web/key_scopes.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch:
        batch.drop_column("scope")
