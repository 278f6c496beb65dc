"""``/api/mcp/servers``: external MCP servers whose tools chat agents use (platform admins; docs/mcp.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, delete, get, patch, post

from app.services.actor import Actor
from app.services.mcp import client
from app.services.mcp.registry import McpServerService, server_view
from app.services.mcp.views import ExternalToolView, McpServerBody, McpServerView
from app.services.secrets import SecretBox, secret_box
from app.web.api.schemas import Deleted, documented_body
from app.web.deps import db, get_platform


def unreachable(_request: Request[Any, Any, Any], exc: client.McpClientError) -> Response[Any]:
    """502: the external server could not be reached or refused (its own words in the detail)."""
    return Response({"status_code": 502, "detail": str(exc)}, status_code=502, media_type=MediaType.JSON)


def secret_box_of(request: Request[Any, Any, Any]) -> Callable[[], SecretBox]:
    settings = get_platform(request.app.state).settings
    return lambda: secret_box(settings.secret_key, settings.home)


class McpServerController(Controller):
    """Register external MCP servers and give their tools to chat agents."""

    path = "/mcp/servers"
    tags = ["mcp"]
    exception_handlers = {client.McpClientError: unreachable}

    @get("/")
    async def list_servers(self, request: Request[Any, Any, Any], actor: Actor) -> list[McpServerView]:
        """Every registered server (header values never: the config secrets holding them)."""
        async with db(request) as session:
            return [server_view(s) for s in await McpServerService(session, secret_box_of(request)).list(actor)]

    @post("/", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[Any, documented_body(McpServerBody, closed=True)],
    ) -> McpServerView:
        """Register a server; header values are stored as global config secrets (audited)."""
        async with db(request) as session:
            return server_view(await McpServerService(session, secret_box_of(request)).create(actor, data))

    @get("/{server_id:str}")
    async def get_server(self, request: Request[Any, Any, Any], actor: Actor, server_id: str) -> McpServerView:
        """One server."""
        async with db(request) as session:
            return server_view(await McpServerService(session, secret_box_of(request)).get(actor, server_id))

    @patch("/{server_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        server_id: str,
        data: Annotated[Any, documented_body(McpServerBody, closed=True)],
    ) -> McpServerView:
        """Change a server (``headers`` given replaces them all; audited)."""
        async with db(request) as session:
            return server_view(await McpServerService(session, secret_box_of(request)).update(actor, server_id, data))

    @delete("/{server_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, server_id: str) -> Deleted:
        """Remove a server (audited; its config secrets stay)."""
        async with db(request) as session:
            await McpServerService(session, secret_box_of(request)).delete(actor, server_id)
        return {"deleted": True}

    @get("/{server_id:str}/tools")
    async def tools(self, request: Request[Any, Any, Any], actor: Actor, server_id: str) -> list[ExternalToolView]:
        """The tools the server lists now (a check that the URL and headers work); 502 when unreachable."""
        async with db(request) as session:
            service = McpServerService(session, secret_box_of(request))
            server = await service.get(actor, server_id)
            headers = await service.headers_of(server)
            url, version = server.url, server.updated_at.isoformat()
        listed = await client.list_tools(server_id, url, headers, version)
        return [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in listed]


CONTROLLERS = [McpServerController]
