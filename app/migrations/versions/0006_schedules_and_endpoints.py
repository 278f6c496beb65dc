"""schedules and endpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Cron schedules of workflows and the record of their firings. HTTP endpoints need no table: they are
options of the workflow row.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("workflow_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("organization_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("declared_cron", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("cron", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("params", sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql"), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("overlap_policy", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("next_run_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("last_execution_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("last_detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflow.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "schedule_run",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("schedule_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("scheduled_for", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fired_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("execution_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedule.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_run_slot"),
    )
    with op.batch_alter_table("schedule_run", schema=None) as batch_op:
        batch_op.create_index("ix_schedule_run_schedule_fired", ["schedule_id", "fired_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule_run", schema=None) as batch_op:
        batch_op.drop_index("ix_schedule_run_schedule_fired")
    op.drop_table("schedule_run")
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_schedule_organization_id"))
    op.drop_table("schedule")
