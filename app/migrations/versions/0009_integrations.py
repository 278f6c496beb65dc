"""integrations

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

Placeholder in the migration chain; filled in by the change that adds these tables.
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
import sqlmodel  # noqa: F401
from alembic import op  # noqa: F401

import app.models.base  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
