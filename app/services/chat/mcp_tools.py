"""Tools of external MCP servers in the chat, next to workflows (docs/mcp.md, "Client").

An admin registers a server (:mod:`app.services.mcp.registry`) and gives its tools to chat agents.
A turn of a conversation whose agent has servers offers their tools to the model as
``mcp:<server>/<tool>`` (the model sees a provider-safe name); a call is recorded on the conversation
like a workflow call (a tool call row with its arguments, status, result or error), without an
execution: the work happens on the other server. Each call is checked again when it runs: the
server must still be active and given to the conversation's agent, the tool still offered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models.mcp import McpServer
from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService
from app.services.errors import DomainError
from app.services.mcp import client
from app.services.mcp.registry import McpServerService
from app.services.secrets import SecretBox

log = logging.getLogger(__name__)

PREFIX = "mcp:"


def external_name(server: str, tool: str) -> str:
    """The name a call of an external tool is recorded under (``mcp:<server>/<tool>``)."""
    return f"{PREFIX}{server}/{tool}"


def is_external(name: str) -> bool:
    """True for the name of an external MCP tool (never a workflow name: those cannot hold ':')."""
    return name.startswith(PREFIX) and "/" in name


def _offered(server: McpServer, tool: str) -> bool:
    return server.tools is None or tool in server.tools


class ExternalTools:
    """The external MCP tools of a conversation's agent, and running them.

    Args:
        sessions: Session factory (no transaction is open while a server is called).
        secret_box: Decrypts the servers' header secrets.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], secret_box: Callable[[], SecretBox]) -> None:
        self.sessions = sessions
        self.secret_box = secret_box

    async def _servers(self, agent_id: str) -> list[tuple[McpServer, dict[str, str]]]:
        async with transaction(self.sessions) as session:
            service = McpServerService(session, self.secret_box)
            found = []
            for server in await service.for_agent(agent_id):
                try:
                    found.append((server, await service.headers_of(server)))
                except DomainError as exc:
                    log.warning("MCP server %s skipped: %s", server.name, exc)
            return found

    async def for_agent(self, agent_id: str | None) -> list[dict[str, Any]]:
        """The external tools given to the agent, as the chat's tool metadata (unreachable servers skipped)."""
        if not agent_id:
            return []
        tools: list[dict[str, Any]] = []
        for server, headers in await self._servers(agent_id):
            try:
                listed = await client.list_tools(server.id, server.url, headers, server.updated_at.isoformat())
            except client.McpClientError as exc:
                log.warning("MCP server %s offers no tools now: %s", server.name, exc)
                continue
            for tool in listed:
                if _offered(server, tool.name):
                    tools.append(
                        {
                            "name": external_name(server.name, tool.name),
                            "description": tool.description,
                            "tool_description": None,
                            "params_schema": tool.input_schema,
                            "parameters": [],
                            "category": f"MCP: {server.name}",
                            "needs_approval": False,
                        }
                    )
        return tools

    async def call(self, actor: Actor, agent_id: str | None, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run an external tool for a conversation; returns ``{"status", "result" | "error"}``."""
        server_name, _, tool = name[len(PREFIX) :].partition("/")
        async with transaction(self.sessions) as session:
            try:
                agent = await ChatAgentService(session).for_conversation(actor, agent_id)
            except DomainError as exc:
                return {"status": "Failed", "error": str(exc)}
        match = [(s, h) for s, h in await self._servers(agent.id) if s.name == server_name and _offered(s, tool)]
        if not match:
            return {
                "status": "Failed",
                "error": f"{name!r} is not a tool of the agent {agent.name!r} here; it did not run.",
            }
        server, headers = match[0]
        log.info("chat: %s calls %s on MCP server %s", actor.email, tool, server.name)
        return await client.call_tool(server.url, headers, tool, arguments)
