"""config and secrets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

The ``config_entry`` table: configuration values and Fernet-encrypted secrets,
per organization (``organization_id``) or global (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_GLOBAL_ONLY = "organization_id IS NULL"


def upgrade() -> None:
    op.create_table(
        "config_entry",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("config_type", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "key", name="uq_config_entry_org_key"),
    )
    with op.batch_alter_table("config_entry", schema=None) as batch_op:
        # NULLs are distinct in a unique constraint: global keys are kept unique by a partial index.
        batch_op.create_index(
            "uq_config_entry_global_key",
            ["key"],
            unique=True,
            sqlite_where=sa.text(_GLOBAL_ONLY),
            postgresql_where=sa.text(_GLOBAL_ONLY),
        )


def downgrade() -> None:
    with op.batch_alter_table("config_entry", schema=None) as batch_op:
        batch_op.drop_index("uq_config_entry_global_key")
    op.drop_table("config_entry")
