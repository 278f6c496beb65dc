"""The MCP server of the platform: ``tools/list`` and ``tools/call`` over the tool workflows a caller may run.

Built on the official ``mcp`` SDK's low-level :class:`mcp.server.lowlevel.Server` (docs/mcp.md says why).
The transport (streamable HTTP at ``/mcp``, API-key authentication) is the web layer's
(:mod:`app.web.mcp`); it puts the caller's :class:`Actor` in the HTTP request's scope under
:data:`ACTOR_SCOPE_KEY`, resolved again on every request, so a revoked key stops working at once and
each call acts with the key's current limits.

Tool list changes are announced to connected clients in both protocol eras: handshake-era sessions
(2025 revisions, e.g. desktop clients) get ``notifications/tools/list_changed`` on their standalone
stream; 2026-07-28 clients get ``ToolsListChanged`` on their ``subscriptions/listen`` stream. A
:class:`ToolListWatcher` notices changes (workspace syncs, access overrides) from the catalogue's
fingerprint, in this process or another one sharing the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.tools import WorkflowTool, make_tools
from app.db import transaction
from app.services.actor import Actor
from app.services.executions.dispatch import Dispatcher
from app.services.mcp import catalog
from app.services.mcp.calls import EXECUTION_META, TRIGGER, CallOutcome, ToolCalls
from app.services.mcp.choices import add_choices

log = logging.getLogger(__name__)

ACTOR_SCOPE_KEY = "bifrost.mcp.actor"
SERVER_NAME = "bifrost"
INSTRUCTIONS = (
    "Bifrost Workbench: each tool is an automation workflow you may run. A call is a recorded execution "
    "(its history and logs are on the platform). Some workflows need an approver: such a call answers "
    "that it waits for approval and where, and runs only once approved."
)
POLL_SECONDS = 2.0  # how often the tool catalogue's fingerprint is read while clients are connected


def _actor(ctx: ServerRequestContext[Any, Any]) -> Actor:
    request = ctx.request
    actor = request.scope.get(ACTOR_SCOPE_KEY) if request is not None else None
    if not isinstance(actor, Actor):  # only reachable if the server is mounted without its auth wrapper
        raise MCPError(code=types.INVALID_REQUEST, message="Authentication required: send an API key.")
    return actor


def _result(outcome: CallOutcome) -> types.CallToolResult:
    meta = {EXECUTION_META: outcome.execution_id} if outcome.execution_id else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.text)],
        structured_content=outcome.structured,
        is_error=outcome.is_error,
        _meta=meta,
    )


class ListChangedServer(Server[Any]):
    """The SDK server, announcing ``tools.listChanged`` to handshake-era clients too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


class PlatformMcp:
    """The MCP server object and what it needs of the platform.

    Args:
        sessions: Session factory.
        dispatcher: The submit path's dispatcher.
        public_url: This server's base URL (links in answers).
        version: Version reported in ``serverInfo``.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, public_url: str, version: str = ""
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.calls = ToolCalls(sessions, dispatcher, public_url)
        self.bus = InMemorySubscriptionBus()
        # Open handshake-era connections (weak: each lives as long as its client's session).
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self.server = ListChangedServer(
            SERVER_NAME,
            version=version,
            title="Bifrost Workbench",
            instructions=INSTRUCTIONS,
            # Each caller sees their own list: never shared, never reused once changed.
            cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self.bus),
        )

    # ----- tools -----------------------------------------------------------------------------------
    async def tools(self, actor: Actor) -> list[WorkflowTool]:
        """The tools ``actor`` may run, with their argument schemas (data-provider choices as enums)."""
        async with transaction(self.sessions) as session:
            metas = [catalog.tool_meta(row, policy) for row, policy in await catalog.tool_rows(session, actor)]
        metas = await add_choices(self.sessions, self.dispatcher, actor, metas, trigger=TRIGGER)
        return make_tools(metas)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        actor = _actor(ctx)
        # Who to tell when the list changes (handshake era). ctx.session is made per request; the SDK
        # hands the connection itself only to its (not yet used) Context, hence the private attribute.
        connection = getattr(ctx.session, "_connection", None)
        if isinstance(connection, Connection):
            self._connections.add(connection)
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.tool_name,
                    title=tool.workflow,
                    description=tool.description,
                    input_schema=tool.parameters_schema,
                )
                for tool in await self.tools(actor)
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        actor = _actor(ctx)
        arguments = params.arguments or {}
        if not isinstance(arguments, dict):
            return _result(CallOutcome("Invalid arguments: must be an object of parameter values.", is_error=True))
        async with transaction(self.sessions) as session:
            rows = await catalog.tool_rows(session, actor)
        # Tool names are the workflows' names made safe for every client: map back through the same rule.
        by_name = {t.tool_name: t.workflow for t in make_tools([catalog.tool_meta(r, p) for r, p in rows])}
        workflow = by_name.get(params.name)
        if workflow is None:  # unknown, and not the caller's to run: the same answer
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name!r}.")
        try:
            return _result(await self.calls.call(actor, workflow, arguments))
        except Exception:  # a tool error the model can read, never a bare protocol error
            log.exception("mcp tool call %s failed", workflow)
            return _result(CallOutcome("The call failed unexpectedly; the error has been logged.", is_error=True))

    # ----- list changes ----------------------------------------------------------------------------
    async def announce_tools_changed(self) -> int:
        """Tell connected clients that their tool list may have changed; returns how many sessions were told."""
        await self.bus.publish(ToolsListChanged())
        told = 0
        for connection in list(self._connections):
            await connection.send_tool_list_changed()  # best effort: never raises
            told += 1
        return told

    @contextlib.asynccontextmanager
    async def watching(self, poll_seconds: float = POLL_SECONDS) -> AsyncIterator[None]:
        """Announce tool list changes while the context is open (the serving app's lifespan)."""
        watcher = ToolListWatcher(self, poll_seconds)
        task = asyncio.create_task(watcher.run(), name="mcp-tool-list-watcher")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ToolListWatcher:
    """Reads the catalogue fingerprint every few seconds and announces changes."""

    def __init__(self, mcp: PlatformMcp, poll_seconds: float) -> None:
        self.mcp = mcp
        self.poll_seconds = poll_seconds
        self.last: tuple[Any, ...] | None = None

    async def check(self) -> bool:
        """Compare the fingerprint with the last one; announce a change. Returns True when it changed."""
        async with transaction(self.mcp.sessions) as session:
            current = await catalog.fingerprint(session)
        changed = self.last is not None and current != self.last
        self.last = current
        if changed:
            await self.mcp.announce_tools_changed()
        return changed

    async def run(self) -> None:
        while True:
            # Sleep first: the app's lifespan opens this before the platform has migrated the database.
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.check()
            except Exception:  # a database hiccup: try again next time
                log.warning("mcp: reading the tool catalogue failed", exc_info=True)
