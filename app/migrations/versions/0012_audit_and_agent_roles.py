"""audit log and agents assigned to roles

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08

``audit_event``: the append-only record of security-relevant events (app/services/audit).
``chat_agent.role_ids``: the roles a chat agent is offered to; an agent without any stays offered to everyone.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")
_WHEN = app.models.base.UTCDateTime(timezone=True)


def _text(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("occurred_at", _WHEN, nullable=False),
        sa.Column("actor_id", _text(36), nullable=True),
        sa.Column("actor_email", _text(320), nullable=True),
        sa.Column("action", _text(64), nullable=False),
        sa.Column("target_type", _text(64), nullable=True),
        sa.Column("target_id", _text(255), nullable=True),
        sa.Column("organization_id", _text(36), nullable=True),
        sa.Column("ip", _text(64), nullable=True),
        sa.Column("details", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event") as batch:
        batch.create_index("ix_audit_event_occurred", ["occurred_at"], unique=False)
        batch.create_index("ix_audit_event_org_occurred", ["organization_id", "occurred_at"], unique=False)
        batch.create_index(batch.f("ix_audit_event_actor_id"), ["actor_id"], unique=False)
        batch.create_index(batch.f("ix_audit_event_action"), ["action"], unique=False)

    with op.batch_alter_table("chat_agent") as batch:
        batch.add_column(sa.Column("role_ids", _JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("chat_agent") as batch:
        batch.drop_column("role_ids")
    op.drop_table("audit_event")
