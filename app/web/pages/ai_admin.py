"""``/admin/ai`` (platform admins): model settings, tool approval, agents and usage per organization."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.chat.agents import ChatAgentService, ChatToolService, agent_view
from app.services.chat.ai_usage import AIUsageService
from app.services.errors import DomainError
from app.services.identity.organizations import OrganizationService
from app.web.api.ai import settings_service
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context


def _names(text: str) -> list[str] | None:
    """A comma-separated form field as a list (empty: None = "all")."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _agent_form(form: Any) -> dict[str, Any]:
    roles = form.getall("role_ids", []) if hasattr(form, "getall") else []
    return {
        "role_ids": [r for r in roles if isinstance(r, str) and r],
        "name": form_text(form, "name"),
        "model": form_text(form, "model") or None,
        "tools": _names(form_text(form, "tools")),
        "knowledge_namespaces": _names(form_text(form, "knowledge_namespaces")),
        "instructions": form_text(form, "instructions"),
        "is_default": form_text(form, "is_default") == "true",
        "is_active": form_text(form, "is_active") == "true",
    }


class AIAdminPages(PageController):
    """The AI settings page."""

    path = "/admin/ai"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Settings of the platform (and of the organization acted in), tools, agents and usage."""
        actor.require_admin("manage AI settings")
        async with db(request) as session:
            settings = settings_service(request, session)
            scopes = [{**await settings.get(actor, None), "label": "Platform"}]
            if actor.acting_org_id:
                org = await OrganizationService(session).get(actor, actor.acting_org_id)
                scopes.append({**await settings.get(actor, org.id), "label": org.name})
            tools = await ChatToolService(session).tools_for(actor)
            agents = [agent_view(a) for a in await ChatAgentService(session).list(actor)]
            roles = await ChatAgentService(session).assignable_roles(actor)
            usage = await AIUsageService(session).summary(actor)
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/ai_admin.html",
            context={
                **layout,
                "scopes": scopes,
                "tools": tools,
                "agents": agents,
                "roles": roles,
                "usage": usage,
                "error": None,
            },
        )

    @post("/settings", status_code=303)
    async def save_settings(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Save one scope's model settings."""
        form = await request.form()
        scope = form_text(form, "scope")
        body = {
            "model": form_text(form, "model").strip() or None,
            "base_url": form_text(form, "base_url").strip() or None,
            "api_key_config": form_text(form, "api_key_config").strip() or None,
            "knowledge_namespaces": _names(form_text(form, "knowledge_namespaces")) or [],
        }
        try:
            async with db(request) as session:
                await settings_service(request, session).update(actor, None if scope == "global" else scope, body)
            flash(request, "AI settings saved.")
        except DomainError as exc:
            actor.require_admin("manage AI settings")
            flash(request, f"Not saved: {exc}")
        return Redirect("/admin/ai", status_code=303)

    @post("/tools/{workflow:str}", status_code=303)
    async def set_tool(self, request: Request[Any, Any, Any], actor: Actor, workflow: str) -> Redirect:
        """Require approval for a tool (or stop requiring it)."""
        form = await request.form()
        async with db(request) as session:
            result = await ChatToolService(session).set_approval(
                actor, workflow, form_text(form, "needs_approval") == "true"
            )
        state = "needs approval" if result["needs_approval"] else "runs without approval"
        flash(request, f"{result['workflow']} {state}.")
        return Redirect("/admin/ai#ai-tools", status_code=303)

    @post("/agents", status_code=303)
    async def create_agent(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Create an agent in the organization acted in (or for all organizations)."""
        form = await request.form()
        try:
            async with db(request) as session:
                agent = await ChatAgentService(session).create(actor, _agent_form(form))
            flash(request, f"Agent {agent.name} created.")
        except DomainError as exc:
            actor.require_admin("configure chat agents")
            flash(request, f"Not created: {exc}")
        return Redirect("/admin/ai#ai-agents", status_code=303)

    @post("/agents/{agent_id:str}", status_code=303)
    async def update_agent(self, request: Request[Any, Any, Any], actor: Actor, agent_id: str) -> Redirect:
        """Save an agent."""
        form = await request.form()
        try:
            async with db(request) as session:
                agent = await ChatAgentService(session).update(actor, agent_id, _agent_form(form))
            flash(request, f"Agent {agent.name} saved.")
        except DomainError as exc:
            actor.require_admin("configure chat agents")
            flash(request, f"Not saved: {exc}")
        return Redirect("/admin/ai#ai-agents", status_code=303)


AI_ADMIN_PAGE_HANDLERS = [AIAdminPages]
