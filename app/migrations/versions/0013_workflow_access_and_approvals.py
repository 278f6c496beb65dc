"""workflow access policies and approvals

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08

``workflow.access`` / ``access_roles`` / ``needs_approval``: what the decorator declares (synced by
scans). ``workflow_access``: a platform admin's overrides, never written by scans. ``execution_approval``:
the approval an ``AwaitingApproval`` run waits for. The chat's "needs approval" tool setting becomes the
workflow's: every ``chat_tool_setting`` row with ``needs_approval`` becomes an override (approvers:
platform admins; no self-approval), so a run of that workflow from any trigger now waits.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")
_WHEN = app.models.base.UTCDateTime(timezone=True)
# app.models.workflow's namespace, copied: a migration must not change when the code does.
_ID_NAMESPACE = uuid.UUID("6f1c3a52-9d4e-4b7a-9a0e-2f5b8c1d7e40")


def _text(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("workflow") as batch:
        batch.add_column(sa.Column("access", _text(20), nullable=False, server_default="everyone"))
        batch.add_column(sa.Column("access_roles", _JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("needs_approval", sa.Boolean(), nullable=False, server_default=sa.false()))
    access = op.create_table(
        "workflow_access",
        sa.Column("workflow_id", _text(36), nullable=False),
        sa.Column("access", _text(20), nullable=True),
        sa.Column("roles", _JSON, nullable=True),
        sa.Column("organizations", _JSON, nullable=True),
        sa.Column("needs_approval", sa.Boolean(), nullable=True),
        sa.Column("approver_role", _text(200), nullable=True),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("schedules_skip_approval", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_by", _text(36), nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("workflow_id"),
    )
    op.create_table(
        "execution_approval",
        sa.Column("execution_id", _text(36), nullable=False),
        sa.Column("workflow_id", _text(36), nullable=False),
        sa.Column("workflow_name", _text(200), nullable=False),
        sa.Column("organization_id", _text(36), nullable=True),
        sa.Column("requested_by", _text(36), nullable=False),
        sa.Column("requested_by_name", _text(320), nullable=False),
        sa.Column("trigger", _text(20), nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("approver_role", _text(200), nullable=True),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("requested_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("decided_by", _text(36), nullable=True),
        sa.Column("decided_by_name", _text(320), nullable=True),
        sa.Column("decided_at", _WHEN, nullable=True),
        sa.Column("reason", _text(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["execution.id"]),
        sa.PrimaryKeyConstraint("execution_id"),
    )
    with op.batch_alter_table("execution_approval") as batch:
        batch.create_index("ix_execution_approval_status_expires", ["status", "expires_at"], unique=False)
        batch.create_index(batch.f("ix_execution_approval_organization_id"), ["organization_id"], unique=False)

    # The chat tool setting moves to the workflow.
    bind = op.get_bind()
    settings = sa.table(
        "chat_tool_setting",
        sa.column("workflow_name", sa.String),
        sa.column("needs_approval", sa.Boolean),
        sa.column("updated_by", sa.String),
        sa.column("updated_at", _WHEN),
    )
    rows = bind.execute(
        sa.select(settings.c.workflow_name, settings.c.updated_by, settings.c.updated_at).where(
            settings.c.needs_approval.is_(True)
        )
    ).all()
    if rows:
        op.bulk_insert(
            access,
            [
                {
                    "workflow_id": str(uuid.uuid5(_ID_NAMESPACE, f"workflow:{name}")),
                    "needs_approval": True,
                    "allow_self_approval": False,
                    "schedules_skip_approval": False,
                    "updated_by": updated_by,
                    "updated_at": updated_at,
                }
                for name, updated_by, updated_at in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("execution_approval")
    op.drop_table("workflow_access")
    with op.batch_alter_table("workflow") as batch:
        batch.drop_column("needs_approval")
        batch.drop_column("access_roles")
        batch.drop_column("access")
