"""Approval rows written and closed inside other services' transactions (the submit path, cancel)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Execution, Workflow
from app.models.access import ExecutionApproval
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.workflows.access import AccessPolicy

DEFAULT_APPROVAL_EXPIRY_SECONDS = 72 * 3600.0
WAITING = "waiting"


def new_approval(
    execution: Execution, row: Workflow, policy: AccessPolicy, actor: Actor, expiry_seconds: float
) -> ExecutionApproval:
    """The approval of a run written ``AwaitingApproval``: who asked, with what, and who may decide."""
    now = utcnow()
    return ExecutionApproval(
        execution_id=execution.id,
        workflow_id=row.id,
        workflow_name=row.name,
        organization_id=execution.organization_id,
        requested_by=actor.user_id,
        requested_by_name=actor.email,
        trigger=execution.trigger,
        parameters=execution.input_data,
        approver_role=policy.approver_role,
        allow_self_approval=policy.allow_self_approval,
        status=WAITING,
        requested_at=now,
        expires_at=now + timedelta(seconds=expiry_seconds),
    )


async def close_approval(
    session: AsyncSession, execution_id: str, status: str, actor: Actor | None, reason: str | None
) -> bool:
    """Mark a waiting approval decided (``approved``, ``rejected``, ``expired``, ``cancelled``); False if it was not waiting."""
    result = await session.execute(
        update(ExecutionApproval)
        .where(col(ExecutionApproval.execution_id) == execution_id, col(ExecutionApproval.status) == WAITING)
        .values(
            status=status,
            decided_by=actor.user_id if actor else None,
            decided_by_name=actor.email if actor else None,
            decided_at=utcnow(),
            reason=reason,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
