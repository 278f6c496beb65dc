"""Demo: workflows that use the SDK to talk to the platform itself."""

import asyncio
import logging

from bifrost import context, executions, organizations, roles, users, workflow, workflows

logger = logging.getLogger(__name__)


@workflow(category="Platform", tags=["demo"])
async def recent_failures(limit: int = 10) -> list[dict]:
    """List my most recent failed executions.

    Args:
        limit: How many to return.
    """
    failed = await executions.list(status="Failed", limit=limit)
    return [{"workflow": e.workflow_name, "error": e.error_message, "at": str(e.started_at)} for e in failed]


@workflow(category="Platform", tags=["demo", "admin"], access="admins")
async def organization_report() -> list[dict]:
    """List every organization (platform admins only: technicians do not see it)."""
    orgs = await organizations.list()
    logger.info("%d organizations", len(orgs))
    return [org.model_dump() for org in orgs]


@workflow(category="Platform", tags=["demo"], timeout_seconds=5)
async def long_running_task(seconds: int = 3) -> str:
    """Sleep a while, logging progress; past 5 seconds the platform stops it.

    Args:
        seconds: How long to work.
    """
    for i in range(seconds):
        logger.info("step %d of %d", i + 1, seconds)
        await asyncio.sleep(1)
    return "done"


@workflow(category="Platform", tags=["demo", "admin"], access="admins")
async def team_directory(org_id: str | None = None) -> list[dict]:
    """List users with their roles (platform admins only).

    Args:
        org_id: Only this organization's users (default: everyone).
    """
    people = await users.list(org_id=org_id)
    role_names: dict[str, list[str]] = {}
    if context.org_id:
        for role in await roles.list():
            for user_id in await roles.list_users(role.id):
                role_names.setdefault(user_id, []).append(role.name)
    return [
        {"email": u.email, "name": u.name, "admin": u.is_superuser, "roles": role_names.get(u.id, [])}
        for u in people
    ]


@workflow(category="Platform", tags=["demo"])
async def workflow_catalogue() -> list[dict]:
    """Describe every workflow of the workspace, with its schedule and tool flag."""
    return [
        {"name": wf.name, "category": wf.category, "schedule": wf.schedule, "tool": wf.is_tool}
        for wf in await workflows.list()
    ]
