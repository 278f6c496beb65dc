"""ai and chat

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

AI and the chat assistant: ``ai_setting`` (model per platform / organization), ``ai_usage``
(tokens per call, against execution, conversation, user and organization), ``chat_agent``
(with the default agent), ``chat_tool_setting`` (approval per tool workflow),
``chat_conversation``, ``chat_message`` and ``chat_tool_call``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.JSON(none_as_null=True), "postgresql")
_STR = sqlmodel.sql.sqltypes.AutoString
_WHEN = app.models.base.UTCDateTime(timezone=True)
DEFAULT_AGENT_ID = "3c6f1f0e-5d0b-4c55-9a39-6a1d1c0a0001"
DEFAULT_INSTRUCTIONS = (
    "You are the Bifrost Workbench assistant of an IT operations team. Answer briefly. "
    "When the user asks for something one of your tools does, call the tool with the right arguments "
    "instead of describing how to do it, then report its result. If a tool fails, say why and what to change. "
    "Never invent tool results."
)


def upgrade() -> None:
    op.create_table(
        "ai_setting",
        sa.Column("scope", _STR(length=36), nullable=False),
        sa.Column("model", _STR(length=200), nullable=True),
        sa.Column("base_url", _STR(length=2000), nullable=True),
        sa.Column("api_key_config", _STR(length=255), nullable=True),
        sa.Column("knowledge_namespaces", _JSON, nullable=False),
        sa.Column("updated_by", _STR(length=36), nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "ai_usage",
        sa.Column("id", _STR(length=36), nullable=False),
        sa.Column("organization_id", _STR(length=36), nullable=True),
        sa.Column("user_id", _STR(length=36), nullable=True),
        sa.Column("execution_id", _STR(length=36), nullable=True),
        sa.Column("conversation_id", _STR(length=36), nullable=True),
        sa.Column("source", _STR(length=20), nullable=False),
        sa.Column("model", _STR(length=200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_ai_usage_conversation_id"), "ai_usage", ["conversation_id"], unique=False)
    op.create_index(op.f("ix_ai_usage_execution_id"), "ai_usage", ["execution_id"], unique=False)
    op.create_index("ix_ai_usage_org_created", "ai_usage", ["organization_id", "created_at"], unique=False)

    op.create_table(
        "chat_conversation",
        sa.Column("id", _STR(length=36), nullable=False),
        sa.Column("user_id", _STR(length=36), nullable=False),
        sa.Column("organization_id", _STR(length=36), nullable=True),
        sa.Column("agent_id", _STR(length=36), nullable=True),
        sa.Column("title", _STR(length=200), nullable=False),
        sa.Column("history", _JSON, nullable=False),
        sa.Column("next_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_chat_conversation_user_org", "chat_conversation", ["user_id", "organization_id", "updated_at"], unique=False
    )
    op.create_table(
        "chat_tool_setting",
        sa.Column("workflow_name", _STR(length=200), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column("updated_by", _STR(length=36), nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("workflow_name"),
    )
    agents = op.create_table(
        "chat_agent",
        sa.Column("id", _STR(length=36), nullable=False),
        sa.Column("organization_id", _STR(length=36), nullable=True),
        sa.Column("name", _STR(length=100), nullable=False),
        sa.Column("description", _STR(length=2000), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("tools", _JSON, nullable=True),
        sa.Column("knowledge_namespaces", _JSON, nullable=True),
        sa.Column("model", _STR(length=200), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "name", name="uq_chat_agent_org_name"),
    )
    op.create_table(
        "chat_message",
        sa.Column("id", _STR(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", _STR(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tool_call_id", _STR(length=36), nullable=True),
        sa.Column("turn_id", _STR(length=36), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["chat_conversation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_chat_message_conversation_seq"),
    )
    op.create_table(
        "chat_tool_call",
        sa.Column("id", _STR(length=36), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("turn_id", _STR(length=36), nullable=False),
        sa.Column("model_call_id", _STR(length=200), nullable=True),
        sa.Column("workflow_name", _STR(length=200), nullable=False),
        sa.Column("arguments", _JSON, nullable=False),
        sa.Column("status", _STR(length=30), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column("execution_id", _STR(length=36), nullable=True),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["chat_conversation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_chat_tool_call_conversation_id"), "chat_tool_call", ["conversation_id"], unique=False)

    # The default agent: every tool the user may run, the organization's enabled namespaces, the configured model.
    now = datetime.now(UTC)
    op.bulk_insert(
        agents,
        [
            {
                "id": DEFAULT_AGENT_ID,
                "organization_id": None,
                "name": "Assistant",
                "description": "The default assistant: runs the tool workflows you may run.",
                "instructions": DEFAULT_INSTRUCTIONS,
                "tools": None,
                "knowledge_namespaces": None,
                "model": None,
                "is_default": True,
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chat_tool_call_conversation_id"), table_name="chat_tool_call")
    op.drop_table("chat_tool_call")
    op.drop_table("chat_message")
    op.drop_table("chat_agent")
    op.drop_table("chat_tool_setting")
    op.drop_index("ix_chat_conversation_user_org", table_name="chat_conversation")
    op.drop_table("chat_conversation")
    op.drop_index("ix_ai_usage_org_created", table_name="ai_usage")
    op.drop_index(op.f("ix_ai_usage_execution_id"), table_name="ai_usage")
    op.drop_index(op.f("ix_ai_usage_conversation_id"), table_name="ai_usage")
    op.drop_table("ai_usage")
