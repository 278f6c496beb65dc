"""``/admin/mcp`` (platform admins): external MCP servers and the chat agents given their tools (docs/mcp.md)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService, agent_view
from app.services.errors import DomainError
from app.services.mcp.registry import McpServerService, server_view
from app.web.api.mcp import secret_box_of
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context


def _server_form(form: Any, *, new: bool) -> dict[str, Any]:
    """The API body from the form: empty header value / token fields keep what is stored."""
    agents = form.getall("agent_ids", []) if hasattr(form, "getall") else []
    tools = [t.strip() for t in form_text(form, "tools").split(",") if t.strip()]
    body: dict[str, Any] = {
        "url": form_text(form, "url").strip(),
        "description": form_text(form, "description").strip() or None,
        "agent_ids": [a for a in agents if isinstance(a, str) and a],
        "tools": tools or None,
        "is_active": form_text(form, "is_active", "true") == "true",
    }
    if new:
        body["name"] = form_text(form, "name").strip()
    header, value = form_text(form, "header_name").strip(), form_text(form, "header_value")
    if header and value:
        body["headers"] = {header: value}  # stored as a config secret, never shown again
    return body


class McpAdminPages(PageController):
    """The MCP servers page."""

    path = "/admin/mcp"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Registered servers with their agents, and the registration form."""
        actor.require_admin("manage MCP servers")
        async with db(request) as session:
            servers = [server_view(s) for s in await McpServerService(session, secret_box_of(request)).list(actor)]
            agents = [agent_view(a) for a in await ChatAgentService(session).list(actor)]
            layout = await layout_context(request, session, actor)
        return Template("pages/mcp_admin.html", context={**layout, "servers": servers, "agents": agents})

    @post("/", status_code=303)
    async def register(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Register a server."""
        form = await request.form()
        try:
            async with db(request) as session:
                server = await McpServerService(session, secret_box_of(request)).create(
                    actor, _server_form(form, new=True)
                )
            flash(request, f"MCP server {server.name} registered.")
        except DomainError as exc:
            actor.require_admin("manage MCP servers")
            flash(request, f"Not registered: {exc}")
        return Redirect("/admin/mcp", status_code=303)

    @post("/{server_id:str}", status_code=303)
    async def save(self, request: Request[Any, Any, Any], actor: Actor, server_id: str) -> Redirect:
        """Save a server (its headers stay unless a new value is given)."""
        form = await request.form()
        try:
            async with db(request) as session:
                service = McpServerService(session, secret_box_of(request))
                server = await service.update(actor, server_id, _server_form(form, new=False))
            flash(request, f"MCP server {server.name} saved.")
        except DomainError as exc:
            actor.require_admin("manage MCP servers")
            flash(request, f"Not saved: {exc}")
        return Redirect("/admin/mcp", status_code=303)

    @post("/{server_id:str}/delete", status_code=303)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, server_id: str) -> Redirect:
        """Remove a server."""
        async with db(request) as session:
            await McpServerService(session, secret_box_of(request)).delete(actor, server_id)
        flash(request, "MCP server removed.")
        return Redirect("/admin/mcp", status_code=303)


MCP_ADMIN_PAGE_HANDLERS = [McpAdminPages]
