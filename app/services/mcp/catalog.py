"""The tool workflows a caller may run: one rule for the chat and for MCP clients.

Tools are the active workflows with ``is_tool=True`` that the actor may run in the organization they
act in (the access policy of docs/access.md); an API key limited to one workflow offers only that one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Workflow
from app.models.access import WorkflowAccess
from app.services.actor import Actor
from app.services.workflows.access import AccessPolicy
from app.services.workflows.catalogue import WorkflowService


async def tool_rows(session: AsyncSession, actor: Actor) -> list[tuple[Workflow, AccessPolicy]]:
    """The tool workflows ``actor`` may run, by name, each with its effective access policy."""
    # Only tool workflows are read (not the whole catalogue): the chat runs this on every turn.
    rows = await WorkflowService(session).list_with_policies(actor, tools_only=True)
    if actor.api_key_workflow_id:
        rows = [(w, p) for w, p in rows if actor.api_key_workflow_id in (w.id, w.name)]
    return sorted(rows, key=lambda pair: pair[0].name)


def tool_meta(row: Workflow, policy: AccessPolicy) -> dict[str, Any]:
    """What :func:`agents.tools.make_tools` reads of a tool workflow."""
    return {
        "name": row.name,
        "description": row.description,
        "tool_description": row.tool_description,
        "params_schema": row.params_schema,
        "parameters": row.parameters,
        "category": row.category,
        "needs_approval": policy.needs_approval,
    }


async def fingerprint(session: AsyncSession) -> tuple[Any, ...]:
    """A value that changes whenever any caller's tool list may have changed.

    A workspace sync stamps ``updated_at`` on every workflow it adds, changes or deactivates, and an
    admin's access override stamps its ``workflow_access`` row; counts catch deleted rows. Read by the
    MCP server every few seconds (cheap: two aggregate queries), so it also sees changes made by other
    server processes sharing the database.
    """
    workflows = (
        await session.execute(
            select(func.count(), func.max(col(Workflow.updated_at))).where(col(Workflow.kind) == "workflow")
        )
    ).one()
    overrides = (await session.execute(select(func.count(), func.max(col(WorkflowAccess.updated_at))))).one()
    return (*workflows, *overrides)
