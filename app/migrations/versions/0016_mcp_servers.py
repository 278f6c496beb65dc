"""external MCP servers for chat agents

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

``mcp_server``: external MCP servers an admin registered (URL, header names mapped to config secrets,
the chat agents given their tools; app/services/mcp/registry.py, docs/mcp.md).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")
_WHEN = app.models.base.UTCDateTime(timezone=True)


def _text(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "mcp_server",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("name", _text(40), nullable=False),
        sa.Column("url", _text(2000), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("headers", _JSON, nullable=False),
        sa.Column("agent_ids", _JSON, nullable=False),
        sa.Column("tools", _JSON, nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", _text(36), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_mcp_server_name"),
    )


def downgrade() -> None:
    op.drop_table("mcp_server")
