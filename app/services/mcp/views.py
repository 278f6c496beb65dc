"""API shapes of registered MCP servers."""

from __future__ import annotations

from typing import Any, TypedDict


class McpServerView(TypedDict):
    """An external MCP server as admins see it (header values never: only the config keys holding them)."""

    id: str
    name: str
    url: str
    description: str | None
    headers: dict[str, str]
    agent_ids: list[str]
    tools: list[str] | None
    is_active: bool
    updated_at: str


class McpServerBody(TypedDict, total=False):
    """Body of ``POST /api/mcp/servers`` and ``PATCH /api/mcp/servers/{id}``.

    ``headers`` maps a header name to its value (stored as a global config secret, never returned) or to
    ``{"config": "<key>"}``, naming an existing global config secret.
    """

    name: str
    url: str
    description: str | None
    headers: dict[str, Any]
    agent_ids: list[str]
    tools: list[str] | None
    is_active: bool


class ExternalToolView(TypedDict):
    """A tool an external MCP server lists."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
