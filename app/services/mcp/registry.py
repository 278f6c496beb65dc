"""External MCP servers registered by platform admins, whose tools chat agents use next to workflows.

A server has a URL (streamable HTTP), optional request headers and the chat agents given its tools
(optionally only some of them). Header values are secrets more often than not (``Authorization``):
each is stored as a **global config secret** (``mcp/<server>/<header>``, encrypted like every secret,
masked everywhere) or names an existing one (``{"config": "<key>"}``); the server row keeps only the
keys. Registration, changes and removal are audited (``mcp_server.*``; header names, never values).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.ai import ChatAgent
from app.models.base import utcnow
from app.models.config_entry import ConfigEntry
from app.models.mcp import McpServer
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.config.service import ConfigService, validate_key
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    optional_text,
    reject_unknown_fields,
    require_bool,
)
from app.services.mcp.views import McpServerView
from app.services.secrets import SecretBox
from bifrost.enums import ConfigType

SERVER_REGISTERED = "mcp_server.registered"
SERVER_UPDATED = "mcp_server.updated"
SERVER_DELETED = "mcp_server.deleted"

FIELDS = frozenset({"name", "url", "description", "headers", "agent_ids", "tools", "is_active"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Set by the HTTP client itself, or by MCP: a registration may not override them.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "accept", "mcp-session-id"}
)
MAX_HEADERS = 20


def server_view(server: McpServer) -> McpServerView:
    """The API shape of a server."""
    return {
        "id": server.id,
        "name": server.name,
        "url": server.url,
        "description": server.description,
        "headers": dict(server.headers),
        "agent_ids": list(server.agent_ids),
        "tools": None if server.tools is None else list(server.tools),
        "is_active": server.is_active,
        "updated_at": server.updated_at.isoformat(),
    }


def _check_url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidInputError.field("url", "must be an http(s) URL of at most 2000 characters")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError.field("url", "must be an http(s) URL, e.g. https://mcp.example.com/mcp")
    if parts.username or parts.password:
        raise InvalidInputError.field("url", "must not carry credentials: put them in a header (stored as a secret)")
    return value.strip()


def _names(value: Any, field: str) -> builtins.list[str]:
    if not isinstance(value, builtins.list) or len(value) > 500:
        raise InvalidInputError.field(field, "must be a list of names")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > 200:
            raise InvalidInputError.field(f"{field}[{index}]", "must be a non-empty name")
    return builtins.list(dict.fromkeys(value))


class McpServerService:
    """Register, change and read external MCP servers (platform admins; the chat reads them for its agents).

    Args:
        session: The transaction.
        secret_box: Encrypts header values (called only when one is written or read).
    """

    def __init__(self, session: AsyncSession, secret_box: Callable[[], SecretBox]) -> None:
        self.session = session
        self._secret_box = secret_box

    # ----- reading ----------------------------------------------------------------------------------
    async def list(self, actor: Actor) -> builtins.list[McpServer]:
        """Every registered server, by name (platform admins)."""
        actor.require_admin("manage MCP servers")
        return builtins.list((await self.session.execute(select(McpServer).order_by(col(McpServer.name)))).scalars())

    async def get(self, actor: Actor, server_id: str) -> McpServer:
        """One server (platform admins)."""
        actor.require_admin("manage MCP servers")
        server = await self.session.get(McpServer, server_id) if len(server_id) <= 36 else None
        if server is None:
            raise NotFoundError(f"MCP server {server_id!r} not found.")
        return server

    async def for_agent(self, agent_id: str) -> builtins.list[McpServer]:
        """The active servers whose tools the agent was given (the caller already holds the agent)."""
        stmt = select(McpServer).where(col(McpServer.is_active).is_(True)).order_by(col(McpServer.name))
        return [s for s in (await self.session.execute(stmt)).scalars() if agent_id in (s.agent_ids or [])]

    async def headers_of(self, server: McpServer) -> dict[str, str]:
        """The server's request headers with their values (decrypted): only for calling it.

        Raises:
            NotFoundError: A header's config secret was deleted meanwhile.
        """
        headers = {}
        for header, key in server.headers.items():
            stmt = select(ConfigEntry).where(col(ConfigEntry.key) == key, col(ConfigEntry.organization_id).is_(None))
            entry = (await self.session.execute(stmt)).scalars().first()
            if entry is None:
                raise NotFoundError(f"The config secret {key!r} of MCP server {server.name!r} is gone.")
            secret = entry.config_type == ConfigType.SECRET
            headers[header] = self._secret_box().decrypt(entry.value, f"secret {key!r}") if secret else entry.value
        return headers

    # ----- writing ----------------------------------------------------------------------------------
    async def _check(self, actor: Actor, data: Any, current: McpServer | None) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(data, FIELDS)
        clean: dict[str, Any] = {}
        if "name" in data or current is None:
            name = data.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                raise InvalidInputError.field(
                    "name", "must be 1-40 lower-case letters, digits, '-' or '_' (it prefixes its tools' names)"
                )
            clean["name"] = name
        if "url" in data or current is None:
            clean["url"] = _check_url(data.get("url"))
        if "description" in data:
            clean["description"] = optional_text(data["description"], "description", 2000)
        if "agent_ids" in data:
            ids = _names(data["agent_ids"], "agent_ids")
            found = set(
                (await self.session.execute(select(col(ChatAgent.id)).where(col(ChatAgent.id).in_(ids)))).scalars()
            )
            for agent_id in ids:
                if agent_id not in found:
                    raise InvalidInputError.field("agent_ids", f"no chat agent {agent_id!r}")
            clean["agent_ids"] = ids
        if "tools" in data:
            clean["tools"] = None if data["tools"] is None else _names(data["tools"], "tools")
        if "is_active" in data:
            clean["is_active"] = require_bool(data["is_active"], "is_active")
        if "headers" in data:
            name = clean.get("name") or (current.name if current is not None else None)
            clean["headers"] = await self._headers(actor, data["headers"], name)
        return clean

    async def _headers(self, actor: Actor, value: Any, server_name: str | None) -> dict[str, str]:
        """``{header: value | {"config": key}}`` -> ``{header: config key}``, writing values as global secrets."""
        if not isinstance(value, dict) or len(value) > MAX_HEADERS:
            raise InvalidInputError.field("headers", f"must be an object of at most {MAX_HEADERS} headers")
        stored: dict[str, str] = {}
        config = ConfigService(self.session, self._secret_box)
        for header, given in value.items():
            field = f"headers.{header}"
            if not isinstance(header, str) or not _HEADER.match(header) or header.lower() in _RESERVED_HEADERS:
                raise InvalidInputError.field(field, "must be a header name the server may set (not Host, Accept...)")
            if isinstance(given, dict) and set(given) == {"config"}:
                key = validate_key(given["config"])
                stmt = select(col(ConfigEntry.id)).where(
                    col(ConfigEntry.key) == key, col(ConfigEntry.organization_id).is_(None)
                )
                if (await self.session.execute(stmt)).first() is None:
                    raise InvalidInputError.field(field, f"no global config key {key!r}")
                stored[header] = key
            elif isinstance(given, str) and given and len(given) <= 8000 and "\n" not in given and "\r" not in given:
                key = f"mcp/{server_name}/{header.lower()}"
                await config.set(
                    actor,
                    key,
                    given,
                    is_secret=True,
                    description=f"Header {header} of MCP server {server_name}",
                    org="GLOBAL",
                )
                stored[header] = key
            else:
                raise InvalidInputError.field(
                    field, 'must be the header\'s value (one line) or {"config": "<secret key>"}'
                )
        return stored

    async def _unique(self, name: str, exclude: str | None) -> None:
        found = (
            (await self.session.execute(select(col(McpServer.id)).where(col(McpServer.name) == name))).scalars().first()
        )
        if found is not None and found != exclude:
            raise ConflictError(f"An MCP server named {name!r} is registered already.")

    async def _audit(self, actor: Actor, action: str, server: McpServer) -> None:
        details = {
            "name": server.name,
            "url": server.url,
            "header_names": sorted(server.headers),
            "agent_ids": server.agent_ids,
            "tools": server.tools,
            "is_active": server.is_active,
        }
        await audit.record(self.session, actor, action, "mcp_server", server.id, None, details)

    async def create(self, actor: Actor, data: Any) -> McpServer:
        """Register a server (platform admins).

        Raises:
            InvalidInputError: A bad field (named).
            ConflictError: The name is taken.
        """
        actor.require_admin("manage MCP servers")
        clean = await self._check(actor, data, None)
        await self._unique(clean["name"], None)
        server = McpServer(**clean, created_by=actor.user_id)
        self.session.add(server)
        await self.session.flush()
        await self._audit(actor, SERVER_REGISTERED, server)
        return server

    async def update(self, actor: Actor, server_id: str, data: Any) -> McpServer:
        """Change a server (platform admins); ``headers`` given replaces them all."""
        server = await self.get(actor, server_id)
        clean = await self._check(actor, data, server)
        if "name" in clean:
            await self._unique(clean["name"], server.id)
        for key, value in clean.items():
            setattr(server, key, value)
        server.updated_at = utcnow()
        await self.session.flush()
        await self._audit(actor, SERVER_UPDATED, server)
        return server

    async def delete(self, actor: Actor, server_id: str) -> None:
        """Remove a server (its config secrets stay: other things may use them)."""
        server = await self.get(actor, server_id)
        await self._audit(actor, SERVER_DELETED, server)
        await self.session.delete(server)
        await self.session.flush()
