"""Chat agents (admin-configured assistants) and which tool workflows a user's chat may call.

Tools of a chat are exactly the active workflows with ``is_tool=True`` that the user may run in
the organization they act in: the same rule as running them from their form (visible: global
or that organization's; an API key limited to one workflow offers only that one). An agent with
a ``tools`` list narrows them further. "Needs approval" is the workflow's own setting
(:mod:`app.services.workflows.access`): a run of it from any trigger waits for an approver.

Agents are a boundary (docs/ai.md). An admin may assign an agent to roles (``role_ids``). Platform
admins see every agent. Anyone else sees, among the active agents of their organization and the
global ones: the agents assigned to one of their active roles when there are any, else the agents
assigned to nobody. So a technician whose role was given the "Helpdesk" agent can neither pick nor
be defaulted to the all-tools assistant, and an agent assigned to admins' roles is offered to no one
else; an agent they cannot see answers 404 wherever its id is given. Everything a conversation runs
(model tool calls, ``/run`` commands, calls continued after an approval) is checked against the
tool list of the conversation's agent at the moment it runs (:meth:`ChatToolService.allowed`).
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.ai import DEFAULT_AGENT_ID, ChatAgent
from app.models.base import utcnow
from app.models.organization import Organization
from app.models.user import Role, UserRole
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.chat.ai_settings import check_model_field
from app.services.chat.views import AgentView, ToolApproval, ToolWorkflow
from app.services.errors import (
    ConflictError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    optional_text,
    reject_unknown_fields,
    require_bool,
)
from app.services.knowledge.service import check_namespace
from app.services.mcp.catalog import tool_rows
from app.services.workflows.catalogue import WorkflowService
from app.services.workflows.policies import PolicyService

AGENT_FIELDS = frozenset(
    {
        "name",
        "description",
        "instructions",
        "tools",
        "knowledge_namespaces",
        "model",
        "is_default",
        "is_active",
        "organization_id",
        "role_ids",
    }
)
MAX_INSTRUCTIONS = 20_000


def agent_view(agent: ChatAgent) -> AgentView:
    """The API shape of an agent."""
    return {
        "id": agent.id,
        "organization_id": agent.organization_id,
        "name": agent.name,
        "description": agent.description,
        "instructions": agent.instructions,
        "tools": agent.tools,
        "knowledge_namespaces": agent.knowledge_namespaces,
        "model": agent.model,
        "role_ids": list(agent.role_ids or []),
        "is_default": agent.is_default,
        "is_active": agent.is_active,
        "updated_at": agent.updated_at.isoformat(),
    }


def _name_list(value: Any, field: str, check: Any = None) -> builtins.list[str] | None:
    if value is None:
        return None
    if not isinstance(value, builtins.list) or len(value) > 500:
        raise InvalidInputError.field(field, "must be a list of names (or null for all)")
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 200:
            raise InvalidInputError.field(f"{field}[{index}]", "must be a non-empty name")
        names.append(check(item, f"{field}[{index}]") if check else item.strip())
    return builtins.list(dict.fromkeys(names))


class ChatAgentService:
    """Agents: everyone reads those offered in their organization; platform admins manage them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _role_ids(self, actor: Actor) -> set[str]:
        """The active roles the actor's user holds in their own organization."""
        if not actor.organization_id:
            return set()
        stmt = (
            select(col(Role.id))
            .join(UserRole, col(UserRole.role_id) == col(Role.id))
            .where(
                col(UserRole.user_id) == actor.user_id,
                col(Role.is_active).is_(True),
                col(Role.organization_id) == actor.organization_id,
            )
        )
        return set((await self.session.execute(stmt)).scalars())

    async def _offered(self, actor: Actor, agents: builtins.list[ChatAgent]) -> builtins.list[ChatAgent]:
        """The agents of ``agents`` (active, in scope) offered to the actor: see the module docstring."""
        if actor.is_superuser:
            return agents
        held = await self._role_ids(actor)
        assigned = [a for a in agents if held.intersection(a.role_ids or [])]
        return assigned if assigned else [a for a in agents if not a.role_ids]

    async def _in_scope(self, actor: Actor) -> builtins.list[ChatAgent]:
        stmt = select(ChatAgent).order_by(col(ChatAgent.name), col(ChatAgent.id))
        org = actor.acting_org_id
        in_scope: Any = col(ChatAgent.organization_id).is_(None)
        if org is not None:
            in_scope = in_scope | (col(ChatAgent.organization_id) == org)
        stmt = stmt.where(in_scope)
        if not actor.is_superuser:
            stmt = stmt.where(col(ChatAgent.is_active).is_(True))
        return builtins.list((await self.session.execute(stmt)).scalars())

    async def list(self, actor: Actor) -> builtins.list[ChatAgent]:
        """Agents offered to the actor, by name: of their organization and global ones, narrowed by role
        assignments (admins: every agent in scope, inactive ones too)."""
        return await self._offered(actor, await self._in_scope(actor))

    async def get(self, actor: Actor, agent_id: str) -> ChatAgent:
        """An agent the actor may use (404 otherwise: across organizations, or not offered to them)."""
        agent = await self.session.get(ChatAgent, agent_id) if len(agent_id) <= 36 else None
        if agent is None or not actor.can_see_org(agent.organization_id) or not (agent.is_active or actor.is_superuser):
            raise NotFoundError(f"Agent {agent_id!r} not found.")
        if not actor.is_superuser and agent.id not in {a.id for a in await self.list(actor)}:
            raise NotFoundError(f"Agent {agent_id!r} not found.")
        return agent

    async def default(self, actor: Actor) -> ChatAgent:
        """The default among the agents offered: the organization's, else the global one, else the built-in
        one, else the first offered.

        Raises:
            PermissionDeniedError: No agent is offered to the actor (every one is assigned to other roles).
        """
        agents = [a for a in await self.list(actor) if a.is_active]
        for want_org in (actor.acting_org_id, None):
            for agent in agents:
                if agent.is_default and agent.organization_id == want_org:
                    return agent
        built_in = next((a for a in agents if a.id == DEFAULT_AGENT_ID), None)
        if built_in is not None:
            return built_in
        if agents:
            return agents[0]
        if await self.session.get(ChatAgent, DEFAULT_AGENT_ID) is None and not await self._in_scope(actor):
            # An install without any agent row (the migration creates the built-in one): the plain assistant.
            return ChatAgent(id=DEFAULT_AGENT_ID, name="Assistant", instructions="You are a helpful assistant.")
        raise PermissionDeniedError("No chat agent is offered to you: ask a platform admin to assign one to your role.")

    async def for_conversation(self, actor: Actor, agent_id: str | None) -> ChatAgent:
        """The agent of a conversation (the default one when it has none or it is gone)."""
        if agent_id:
            try:
                agent = await self.get(actor, agent_id)
                if agent.is_active:
                    return agent
            except NotFoundError:
                pass
        return await self.default(actor)

    async def _check(self, data: dict[str, Any], current: ChatAgent | None) -> dict[str, Any]:
        reject_unknown_fields(data, AGENT_FIELDS)
        clean: dict[str, Any] = {}
        if "name" in data or current is None:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
                raise InvalidInputError.field("name", "must be 1-100 characters")
            clean["name"] = name.strip()
        if "description" in data:
            clean["description"] = optional_text(data["description"], "description", 2000)
        if "instructions" in data:
            text = data["instructions"]
            if not isinstance(text, str) or len(text) > MAX_INSTRUCTIONS:
                raise InvalidInputError.field("instructions", f"must be text of at most {MAX_INSTRUCTIONS} characters")
            clean["instructions"] = text
        if "tools" in data:
            clean["tools"] = _name_list(data["tools"], "tools")
        if "knowledge_namespaces" in data:
            clean["knowledge_namespaces"] = _name_list(
                data["knowledge_namespaces"], "knowledge_namespaces", check_namespace
            )
        if "model" in data:
            clean["model"] = check_model_field(data["model"])
        for flag in ("is_default", "is_active"):
            if flag in data:
                clean[flag] = require_bool(data[flag], flag)
        if "role_ids" in data:
            clean["role_ids"] = data["role_ids"]  # checked by the caller, once the organization is known
        if "organization_id" in data:
            org = data["organization_id"]
            if org is not None and (not isinstance(org, str) or await self.session.get(Organization, org) is None):
                raise InvalidInputError.field("organization_id", f"no organization {org!r}")
            clean["organization_id"] = org
        return clean

    async def _unique(self, organization_id: str | None, name: str, exclude: str | None) -> None:
        stmt = select(col(ChatAgent.id)).where(col(ChatAgent.name) == name)
        stmt = stmt.where(
            col(ChatAgent.organization_id).is_(None)
            if organization_id is None
            else col(ChatAgent.organization_id) == organization_id
        )
        found = (await self.session.execute(stmt)).scalars().first()
        if found is not None and found != exclude:
            raise ConflictError(f"An agent named {name!r} exists already here.")

    async def _one_default(self, agent: ChatAgent) -> None:
        # One default per scope: making this one the default unmarks the others of its organization.
        if not agent.is_default:
            return
        stmt = select(ChatAgent).where(col(ChatAgent.id) != agent.id, col(ChatAgent.is_default).is_(True))
        stmt = stmt.where(
            col(ChatAgent.organization_id).is_(None)
            if agent.organization_id is None
            else col(ChatAgent.organization_id) == agent.organization_id
        )
        for other in (await self.session.execute(stmt)).scalars():
            other.is_default = False

    async def assignable_roles(self, actor: Actor) -> builtins.list[dict[str, Any]]:
        """Active roles an agent can be assigned to, with their organization (admins; the agents admin page)."""
        actor.require_admin("configure chat agents")
        stmt = (
            select(Role, col(Organization.name))
            .join(Organization, col(Organization.id) == col(Role.organization_id))
            .where(col(Role.is_active).is_(True))
            .order_by(col(Organization.name), col(Role.name))
        )
        return [
            {"id": role.id, "name": role.name, "organization_id": role.organization_id, "organization_name": org}
            for role, org in (await self.session.execute(stmt)).all()
        ]

    async def _check_roles(self, value: Any, organization_id: str | None) -> builtins.list[str]:
        """``role_ids``: active roles (of the agent's organization, when it has one); [] for none."""
        if value is None:
            return []
        if not isinstance(value, builtins.list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidInputError.field("role_ids", "must be a list of role ids (empty: offered to everyone)")
        ids = builtins.list(dict.fromkeys(value))
        stmt = select(Role).where(col(Role.id).in_(ids), col(Role.is_active).is_(True))
        found = {r.id: r for r in (await self.session.execute(stmt)).scalars()}
        for role_id in ids:
            role = found.get(role_id)
            if role is None:
                raise InvalidInputError.field("role_ids", f"no active role {role_id!r}")
            if organization_id is not None and role.organization_id != organization_id:
                raise InvalidInputError.field("role_ids", f"role {role.name!r} belongs to another organization")
        return ids

    async def _audit_roles(self, actor: Actor, agent: ChatAgent, before: builtins.list[str]) -> None:
        if sorted(before) != sorted(agent.role_ids or []):
            details = {"name": agent.name, "role_ids": agent.role_ids, "previous_role_ids": before}
            await audit.record(
                self.session, actor, audit.AGENT_ROLES_ASSIGNED, "chat_agent", agent.id, agent.organization_id, details
            )

    async def create(self, actor: Actor, data: Any) -> ChatAgent:
        """Create an agent (platform admins); ``organization_id`` omitted = the acting organization."""
        actor.require_admin("configure chat agents")
        if not isinstance(data, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        clean = await self._check(data, None)
        clean.setdefault("organization_id", actor.acting_org_id)
        clean["role_ids"] = await self._check_roles(clean.get("role_ids"), clean["organization_id"])
        await self._unique(clean["organization_id"], clean["name"], None)
        agent = ChatAgent(**clean)
        self.session.add(agent)
        await self._one_default(agent)
        await self.session.flush()
        await self._audit_roles(actor, agent, [])
        return agent

    async def update(self, actor: Actor, agent_id: str, data: Any) -> ChatAgent:
        """Change an agent (platform admins)."""
        actor.require_admin("configure chat agents")
        agent = await self.get(actor, agent_id)
        if not isinstance(data, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        clean = await self._check(data, agent)
        organization_id = clean.get("organization_id", agent.organization_id)
        before = builtins.list(agent.role_ids or [])
        if "role_ids" in clean or "organization_id" in clean:  # moving an agent re-checks its roles
            clean["role_ids"] = await self._check_roles(clean.get("role_ids", before), organization_id)
        await self._unique(organization_id, clean.get("name", agent.name), agent.id)
        for key, value in clean.items():
            setattr(agent, key, value)
        agent.updated_at = utcnow()
        await self._one_default(agent)
        await self.session.flush()
        await self._audit_roles(actor, agent, before)
        return agent

    async def delete(self, actor: Actor, agent_id: str) -> None:
        """Delete an agent (platform admins); the built-in default agent can only be changed."""
        actor.require_admin("configure chat agents")
        agent = await self.get(actor, agent_id)
        if agent.id == DEFAULT_AGENT_ID:
            raise ConflictError("The built-in default agent cannot be deleted; change it instead.")
        await self.session.delete(agent)
        await self.session.flush()


class ChatToolService:
    """Which tool workflows a chat may call, and their approval settings."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def approvals(self) -> dict[str, bool]:
        """``{workflow name: needs_approval}`` of every tool workflow (the workflow's own setting)."""
        rows = await WorkflowService(self.session).list_with_policies(None, tools_only=True)
        return {row.name: policy.needs_approval for row, policy in rows}

    async def tools_for(self, actor: Actor, agent: ChatAgent | None = None) -> builtins.list[ToolWorkflow]:
        """The tool workflows ``actor`` may run here (access policy; narrowed by the agent's list), as metadata dicts."""
        # The same list MCP clients get (app/services/mcp/catalog.py).
        rows = await tool_rows(self.session, actor)
        if agent is not None and agent.tools is not None:
            wanted = set(agent.tools)
            rows = [(w, p) for w, p in rows if w.name in wanted or w.id in wanted]
        return [
            {
                "name": w.name,
                "description": w.description,
                "tool_description": w.tool_description,
                "params_schema": w.params_schema,
                "parameters": w.parameters,
                "category": w.category,
                "needs_approval": policy.needs_approval,
            }
            for w, policy in sorted(rows, key=lambda pair: pair[0].name)
        ]

    async def refusal(self, actor: Actor, conversation_agent_id: str | None, workflow: str) -> str | None:
        """Why a conversation may not run ``workflow`` now, or None: it must be a tool of the conversation's
        agent (as the actor sees it now: an admin may have narrowed the agent, or unassigned it, meanwhile)."""
        try:
            agent = await ChatAgentService(self.session).for_conversation(actor, conversation_agent_id)
        except DomainError as exc:
            return str(exc)
        if any(t["name"] == workflow for t in await self.tools_for(actor, agent)):
            return None
        return f"{workflow!r} is not a tool of the agent {agent.name!r} here; it did not run."

    async def set_approval(self, actor: Actor, workflow: str, needs_approval: Any) -> ToolApproval:
        """Mark a tool workflow as needing approval (or not) for every run, from any trigger (platform admins).

        "Needs approval" is the workflow's property now (``PUT /api/workflows/{name}/access``); this
        older route sets the same thing.
        """
        actor.require_admin("change tool settings")
        flag = require_bool(needs_approval, "needs_approval")
        row = await WorkflowService(self.session).get(actor, workflow)
        if not row.is_tool:
            raise InvalidInputError.field("workflow", f"{row.name!r} is not a tool workflow (is_tool=True)")
        view = await PolicyService(self.session).update(actor, row.name, {"needs_approval": flag})
        return {"workflow": row.name, "needs_approval": view["needs_approval"]}
