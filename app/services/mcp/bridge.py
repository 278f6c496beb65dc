"""``bifrost mcp``: a stdio MCP server that relays to a Bifrost server's ``/mcp`` endpoint.

Desktop clients that only start local processes (Claude Desktop, some IDE integrations) run
``bifrost mcp``; it speaks MCP on stdin/stdout and relays ``tools/list`` and ``tools/call`` to
``$BIFROST_URL/mcp`` with ``Authorization: Bearer $BIFROST_API_KEY``. Everything is decided by the
server (the key's user, organization and limits; every call an execution there); the bridge holds
no state but the connection. Tool list changes the server announces are passed on to the local client
(``notifications/tools/list_changed``, or its ``subscriptions/listen`` stream).

Nothing but MCP messages may reach stdout: diagnostics go to stderr.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from app.services.mcp.server import ListChangedServer

BRIDGE_NAME = "bifrost-bridge"


class BridgeError(Exception):
    """The bridge cannot start (no URL or key, or the server refused it): the message says why."""


def endpoint_of(url: str) -> str:
    """``https://host`` (or ``https://host/mcp``) -> ``https://host/mcp``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BridgeError(f"BIFROST_URL must be an http(s) URL, got {url!r}.")
    return url if url.endswith("/mcp") else f"{url}/mcp"


class Bridge:
    """The local stdio server relaying to one remote MCP client session."""

    def __init__(self, remote: Client) -> None:
        self.remote = remote
        self.bus = InMemorySubscriptionBus()
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self.server = ListChangedServer(
            BRIDGE_NAME,
            title="Bifrost Workbench (stdio bridge)",
            instructions=remote.instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self.bus),
        )

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        connection = getattr(ctx.session, "_connection", None)  # see app.services.mcp.server
        if isinstance(connection, Connection):
            self._connections.add(connection)
        found = await self.remote.list_tools(cursor=params.cursor if params else None, cache_mode="refresh")
        return types.ListToolsResult(tools=found.tools, next_cursor=found.next_cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # An MCPError (unknown tool...) propagates as the same protocol error to the local client.
        result = await self.remote.call_tool(params.name, params.arguments or {})
        if not isinstance(result, types.CallToolResult):
            raise BridgeError(f"unexpected answer to tools/call: {type(result).__name__}")
        return result

    async def on_remote_message(self, message: Any) -> None:
        """Pass the server's tool list changes on to the local client."""
        if isinstance(getattr(message, "root", message), types.ToolListChangedNotification):
            await self.bus.publish(ToolsListChanged())
            for connection in list(self._connections):
                await connection.send_tool_list_changed()

    async def serve_stdio(self) -> None:
        """Serve the local client on stdin/stdout until it closes them."""
        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())


async def run_bridge(url: str | None, key: str | None, org: str | None = None) -> None:
    """Relay stdio MCP to ``<url>/mcp`` with the API key until the local client goes away.

    Args:
        url: The Bifrost server (``BIFROST_URL``).
        key: An API key (``BIFROST_API_KEY``); its limits hold.
        org: Organization a platform admin's key acts in (``X-Bifrost-Org``).

    Raises:
        BridgeError: No URL or key, or the server cannot be reached or refuses the key.
    """
    if not url:
        raise BridgeError("Set BIFROST_URL (or --url) to the Bifrost server, e.g. https://bifrost.example.com.")
    if not key:
        raise BridgeError("Set BIFROST_API_KEY (or --key) to an API key (create one on your profile page).")
    endpoint = endpoint_of(url)
    headers = {"Authorization": f"Bearer {key}"}
    if org:
        headers["X-Bifrost-Org"] = org
    bridge: Bridge | None = None

    async def relay(message: Any) -> None:
        if bridge is not None:
            await bridge.on_remote_message(message)

    http = create_mcp_http_client(headers=headers)
    try:
        # Handshake era towards the server: its list-change notifications then arrive on the session.
        remote = Client(streamable_http_client(endpoint, http_client=http), mode="legacy", message_handler=relay)
        async with http, remote:
            bridge = Bridge(remote)
            print(f"bifrost mcp: relaying to {endpoint}", file=sys.stderr, flush=True)
            await bridge.serve_stdio()
    except BaseExceptionGroup as group:
        raise BridgeError(f"cannot use {endpoint}: {_reason(group)}") from None


def _reason(error: BaseException) -> str:
    """The innermost error of an exception group, worded for a person."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, MCPError):  # the server's own words (e.g. "Invalid or revoked API key.")
        return error.error.message
    return str(error) or type(error).__name__
