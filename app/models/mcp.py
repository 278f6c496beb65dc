"""External MCP servers an admin registered, whose tools chat agents may use (app/services/mcp/registry.py).

Header values (an ``Authorization`` token...) are never stored here: ``headers`` maps each header name
to the key of a global config **secret** holding its value (docs/mcp.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class McpServer(SQLModel, table=True):
    """One external MCP server (streamable HTTP) and the chat agents given its tools."""

    __tablename__ = "mcp_server"
    __table_args__ = (UniqueConstraint("name", name="uq_mcp_server_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    # Prefix of its tools' names in the chat (``<name>__<tool>``): lower-case letters, digits, - and _.
    name: str = Field(max_length=40)
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # {header name: config secret key (global scope)}
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    # Ids of the chat agents that get its tools (next to their workflows).
    agent_ids: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    # Names of the tools offered (None: every tool the server lists).
    tools: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    is_active: bool = True
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
