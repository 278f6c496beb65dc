"""AI: model settings per platform / organization, usage records, chat agents, conversations and tool calls.

* ``ai_setting``: one row per scope (``"global"`` or an organization id): the pydantic-ai
  model string, an OpenAI-compatible base URL, the name of the config key holding the
  API key, and the knowledge namespaces the chat may search.
* ``ai_usage``: one row per model call (``ai.complete``/``ai.stream`` or a chat turn) with
  tokens, against the execution, conversation, user and organization.
* ``chat_agent``: admin-configured assistants (instructions, tools, namespaces, model, the roles offered to).
* ``chat_tool_setting``: per tool workflow, whether a call needs the user's approval.
* ``chat_conversation`` / ``chat_message`` / ``chat_tool_call``: what the chat page shows,
  plus the model-side message history of the conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow

GLOBAL_SCOPE = "global"
# The agent every conversation uses unless it names another (created by migration 0008).
DEFAULT_AGENT_ID = "3c6f1f0e-5d0b-4c55-9a39-6a1d1c0a0001"


class AISetting(SQLModel, table=True):
    """Model settings of the platform (``scope`` = ``"global"``) or of one organization (its id)."""

    __tablename__ = "ai_setting"

    scope: str = Field(primary_key=True, max_length=36)
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=2000)
    api_key_config: str | None = Field(default=None, max_length=255)
    knowledge_namespaces: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    updated_by: str | None = Field(default=None, max_length=36)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class AIUsage(SQLModel, table=True):
    """Tokens of one model call, recorded against whoever caused it."""

    __tablename__ = "ai_usage"
    __table_args__ = (Index("ix_ai_usage_org_created", "organization_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, max_length=36)
    user_id: str | None = Field(default=None, max_length=36)
    execution_id: str | None = Field(default=None, index=True, max_length=36)
    conversation_id: str | None = Field(default=None, index=True, max_length=36)
    source: str = Field(max_length=20)
    model: str = Field(max_length=200)
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ChatAgent(SQLModel, table=True):
    """An assistant admins configure; ``organization_id`` NULL = offered in every organization.

    ``tools`` / ``knowledge_namespaces`` None mean "all the user may use" / "the
    organization's enabled namespaces"; a list narrows them.
    """

    __tablename__ = "chat_agent"
    __table_args__ = (UniqueConstraint("organization_id", "name", name="uq_chat_agent_org_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", max_length=36)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    instructions: str = Field(default="", sa_column=Column(Text, nullable=False))
    tools: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    knowledge_namespaces: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    model: str | None = Field(default=None, max_length=200)
    # Ids of the roles the agent is offered to; empty: everyone in its scope (app/services/chat/agents.py).
    role_ids: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False, server_default="[]"))
    is_default: bool = False
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ChatToolSetting(SQLModel, table=True):
    """Admin settings of one tool workflow (by name)."""

    __tablename__ = "chat_tool_setting"

    workflow_name: str = Field(primary_key=True, max_length=200)
    needs_approval: bool = False
    updated_by: str | None = Field(default=None, max_length=36)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ChatConversation(SQLModel, table=True):
    """One user's conversation in one organization; ``history`` is the model-side message list."""

    __tablename__ = "chat_conversation"
    __table_args__ = (Index("ix_chat_conversation_user_org", "user_id", "organization_id", "updated_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    user_id: str = Field(max_length=36)
    organization_id: str | None = Field(default=None, max_length=36)
    agent_id: str | None = Field(default=None, max_length=36)
    title: str = Field(max_length=200)
    history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    next_seq: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ChatToolCall(SQLModel, table=True):
    """A tool call of a conversation: workflow, arguments, status and the execution that ran it.

    Status: ``awaiting_approval`` → ``rejected`` or ``running`` → ``completed`` / ``failed``.
    """

    __tablename__ = "chat_tool_call"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    conversation_id: str = Field(
        sa_column=Column(String(36), ForeignKey("chat_conversation.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    turn_id: str = Field(max_length=36)
    model_call_id: str | None = Field(default=None, max_length=200)
    workflow_name: str = Field(max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    status: str = Field(max_length=30)
    needs_approval: bool = False
    execution_id: str | None = Field(default=None, max_length=36)
    result: Any = Field(default=None, sa_column=Column(JSONType, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ChatMessage(SQLModel, table=True):
    """One entry of a conversation as shown: ``user``, ``assistant``, ``tool`` (a call) or ``notice``."""

    __tablename__ = "chat_message"
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_chat_message_conversation_seq"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    conversation_id: str = Field(
        sa_column=Column(String(36), ForeignKey("chat_conversation.id", ondelete="CASCADE"), nullable=False)
    )
    seq: int
    role: str = Field(max_length=20)
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    tool_call_id: str | None = Field(default=None, max_length=36)
    turn_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
