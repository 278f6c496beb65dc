"""Demo: workflows that use the SDK to talk to the platform itself."""

import asyncio
import logging

from bifrost import executions, organizations, workflow

logger = logging.getLogger(__name__)


@workflow(category="Platform", tags=["demo"])
async def recent_failures(limit: int = 10) -> list[dict]:
    """List my most recent failed executions.

    Args:
        limit: How many to return.
    """
    failed = await executions.list(status="Failed", limit=limit)
    return [{"workflow": e.workflow_name, "error": e.error_message, "at": str(e.started_at)} for e in failed]


@workflow(category="Platform", tags=["demo", "admin"])
async def organization_report() -> list[dict]:
    """List every organization (platform admins only: others get a permission error)."""
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
