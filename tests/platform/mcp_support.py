"""A live server whose workspace has MCP test workflows, and an official ``mcp`` client for it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.access_support import grant_role  # noqa: F401  (re-exported for the MCP tests)
from tests.platform.conftest import World, browser_session, seed

MCP_FLOWS = '''
import logging
from typing import Annotated

from pydantic import Field

from bifrost import UserError, context, data_provider, workflow

log = logging.getLogger(__name__)


@data_provider(name="mcp_sites", description="Sites of the caller's organization", cache_ttl_seconds=60)
async def mcp_sites() -> list[dict]:
    """Each organization has its own sites."""
    prefix = (context.org_name or "global").replace(" ", "-").lower()
    return [{"label": f"{prefix} head office", "value": f"{prefix}-hq"}, {"label": "Lab", "value": f"{prefix}-lab"}]


@workflow(category="MCP tests", is_tool=True)
async def mcp_echo(
    site: Annotated[str, Field(json_schema_extra={"data_provider": "mcp_sites"})],
    note: str = "",
) -> dict:
    """Echo who runs it, where, and the arguments.

    Args:
        site: The site to act on.
        note: Free text.
    """
    log.info("echo for %s at %s", context.email, site)
    return {"site": site, "note": note, "user": context.email, "org": context.org_id}


@workflow(category="MCP tests", is_tool=True)
async def mcp_refuse(reason: str) -> dict:
    """Always refuses, with the reason it is given.

    Args:
        reason: Why it refuses.
    """
    raise UserError(f"refused: {reason}")


@workflow(category="MCP tests", is_tool=True, access=["Escalation"])
async def mcp_escalate(ticket: int) -> str:
    """Escalate a ticket (the Escalation role only).

    Args:
        ticket: The ticket number.
    """
    return f"escalated {ticket}"


@workflow(category="MCP tests", is_tool=True, needs_approval=True)
async def mcp_wipe(device: str) -> str:
    """Wipe a device (every run waits for an approver).

    Args:
        device: The device name.
    """
    return f"wiped {device}"
'''


def start_mcp_world(tmp: Path, database_url: str | None = None) -> World:
    """A seeded live server with :data:`MCP_FLOWS` in its workspace."""
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "mcp_flows.py").write_text(MCP_FLOWS)
    server = LiveServer(make_settings(tmp, database_url, workspace=workspace)).start()
    data = server.call(lambda: seed(server.platform))
    return World(server=server, **data)


@asynccontextmanager
async def mcp_client(
    url: str, key: str, *, headers: dict[str, str] | None = None, **options: Any
) -> AsyncIterator[Client]:
    """The official MCP client on ``<url>/mcp`` with ``Authorization: Bearer <key>`` (over real HTTP)."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}", **(headers or {})})
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http), **options) as client:
        yield client


def tool_named(tools: list[Any], name: str) -> Any:
    """The tool called ``name`` of a listing."""
    return next(t for t in tools if t.name == name)


def create_key(world: World, email: str, password: str, **limits: str) -> dict[str, Any]:
    """A new API key of a user (keys are created by signed-in users), with optional limits."""
    with browser_session(world, email, password) as http:
        response = http.post("/api/api-keys", json={"name": "mcp test key", **limits})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


class ToyMcpServer:
    """A small MCP server (the SDK's MCPServer) on loopback, in its own thread, that wants a bearer token.

    Tools: ``forecast(city)`` (structured result) and ``broken()`` (a tool error). ``calls`` records
    every call it served, with the Authorization header it came with.
    """

    TOKEN = "toy-secret-token"

    def __init__(self) -> None:
        import threading

        self.calls: list[dict[str, Any]] = []
        self.url = ""
        self._thread = threading.Thread(target=self._main, name="toy-mcp", daemon=True)
        self._ready = threading.Event()
        self._server: Any = None

    def _app(self) -> Any:
        from mcp.server.mcpserver import MCPServer
        from starlette.responses import JSONResponse

        toy = MCPServer("toy")
        seen = self.calls

        @toy.tool()
        async def forecast(city: str) -> dict[str, Any]:
            """Tomorrow's weather in a city."""
            seen.append({"tool": "forecast", "city": city})
            return {"city": city, "sky": "sunny", "high_c": 21}

        @toy.tool()
        async def broken() -> str:
            """Always fails."""
            raise ValueError("the toy is broken")

        app = toy.streamable_http_app(host="127.0.0.1")
        token = self.TOKEN

        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                if headers.get(b"authorization", b"").decode() != f"Bearer {token}":
                    await JSONResponse({"error": "no token"}, status_code=401)(scope, receive, send)
                    return
            await app(scope, receive, send)

        return guarded

    def _main(self) -> None:
        import asyncio
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        self._server = uvicorn.Server(uvicorn.Config(self._app(), log_level="warning", lifespan="on"))

        async def serve() -> None:
            task = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started:
                await asyncio.sleep(0.01)
            self._ready.set()
            await task

        asyncio.run(serve())

    def start(self) -> ToyMcpServer:
        self._thread.start()
        assert self._ready.wait(30), "the toy MCP server did not start"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)
