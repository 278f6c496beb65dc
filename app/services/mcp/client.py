"""Calling external MCP servers (streamable HTTP) with the official SDK's client.

Each listing or call opens its own short connection: external servers are called rarely compared to
a chat turn's cost, and a connection held across turns would outlive the server's session limits.
Listings are cached per server for :data:`LIST_TTL_SECONDS` (a chat turn lists its agent's tools).

The SDK is imported on first use: it costs ~0.7 s of start-up to every process (``bifrost serve``,
``bifrost run``, each worker node) and most installations never call an external MCP server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.services.errors import DomainError

if TYPE_CHECKING:
    import mcp_types as types
    from mcp import Client

LIST_TTL_SECONDS = 60.0
TIMEOUT_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 300.0


class McpClientError(DomainError):
    """An external MCP server could not be reached or answered with a protocol error."""


@dataclass(frozen=True)
class RemoteTool:
    """A tool an external server lists."""

    name: str
    description: str | None
    input_schema: dict[str, Any]


_listings: dict[tuple[str, str, str], tuple[float, list[RemoteTool]]] = {}


def forget_listings() -> None:
    """Drop cached tool listings (tests; after a registration changes)."""
    _listings.clear()


def _reason(error: BaseException) -> str:
    from mcp.shared.exceptions import MCPError

    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, MCPError):
        return error.error.message
    return str(error) or type(error).__name__


@asynccontextmanager
async def connect(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    """An initialized client session on ``url`` (raises :class:`McpClientError` when it cannot be opened)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers=headers)
    client = Client(streamable_http_client(url, http_client=http), read_timeout_seconds=CALL_TIMEOUT_SECONDS)
    try:
        async with http, client:
            yield client
    except (McpClientError, GeneratorExit):
        raise
    except Exception as exc:
        raise McpClientError(f"MCP server {url}: {_reason(exc)}") from None


async def list_tools(server_id: str, url: str, headers: dict[str, str], version: str) -> list[RemoteTool]:
    """The tools ``url`` lists (cached per server and registration version).

    Raises:
        McpClientError: The server is unreachable or refused.
    """
    key = (server_id, url, version)
    cached = _listings.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    tools: list[RemoteTool] = []
    async with connect(url, headers) as client:
        cursor: str | None = None
        for _ in range(20):  # pages: a server that never ends its listing cannot hang a turn
            page = await client.list_tools(cursor=cursor)
            tools += [
                RemoteTool(t.name, t.description, dict(t.input_schema or {"type": "object", "properties": {}}))
                for t in page.tools
            ]
            cursor = page.next_cursor
            if cursor is None:
                break
    _listings[key] = (time.monotonic() + LIST_TTL_SECONDS, tools)
    return tools


def _text_of(result: types.CallToolResult) -> str:
    import mcp_types as types

    parts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return "\n".join(parts)


async def call_tool(url: str, headers: dict[str, str], tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call ``tool`` and say how it went, as the chat records tool outcomes.

    Returns:
        ``{"status": "Completed", "result": ...}`` (the structured content, else the text) or
        ``{"status": "Failed", "error": ...}`` (a tool error, a protocol error, an unreachable server).
    """
    import mcp_types as types
    from mcp.shared.exceptions import MCPError

    try:
        async with connect(url, headers) as client:
            result = await client.call_tool(tool, arguments)
    except McpClientError as exc:
        return {"status": "Failed", "error": str(exc)}
    except MCPError as exc:
        return {"status": "Failed", "error": exc.error.message}
    if not isinstance(result, types.CallToolResult):
        return {"status": "Failed", "error": f"unexpected answer: {type(result).__name__}"}
    if result.is_error:
        return {"status": "Failed", "error": _text_of(result) or "the tool reported an error"}
    value = result.structured_content if result.structured_content is not None else _text_of(result)
    return {"status": "Completed", "result": value}
