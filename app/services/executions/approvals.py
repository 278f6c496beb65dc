"""Approvals: runs of workflows that need approval wait ``AwaitingApproval`` until an approver decides.

No code of such a run has run: the submit path wrote it with its approval and did not dispatch it,
the dispatcher never picks it up, and start-up recovery leaves it waiting. An approver (a platform
admin, or a holder of the workflow's approver role in the run's organization; the requester only
when the workflow allows self-approval) approves it, which makes it ``Pending`` and dispatches it,
or rejects it, which ends it ``Cancelled`` with the reason. Approvals not decided in time end the
same way with "approval expired" (:meth:`ApprovalService.expire_due`, run periodically by the
dispatcher and at start-up).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Execution
from app.models.access import ExecutionApproval
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.executions.approval_rows import WAITING, close_approval
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import ExecutionService
from app.services.executions.views import ApprovalView
from app.services.workflows.access import may_approve, role_names
from app.services.workflows.policies import approver_role_names
from bifrost.enums import ExecutionStatus

EXPIRED = "approval expired"
MAX_REASON = 2000
STATUSES = ("waiting", "approved", "rejected", "expired", "cancelled")


def approval_view(approval: ExecutionApproval, execution_status: str | None, can_decide: bool) -> ApprovalView:
    """The API shape of an approval."""
    return {
        "execution_id": approval.execution_id,
        "workflow_name": approval.workflow_name,
        "workflow_id": approval.workflow_id,
        "org_id": approval.organization_id,
        "requested_by": approval.requested_by,
        "requested_by_name": approval.requested_by_name,
        "trigger": approval.trigger,
        "parameters": approval.parameters,
        "status": approval.status,
        "execution_status": execution_status,
        "approver_role": approval.approver_role,
        "allow_self_approval": approval.allow_self_approval,
        "requested_at": approval.requested_at.isoformat(),
        "expires_at": approval.expires_at.isoformat(),
        "decided_by": approval.decided_by,
        "decided_by_name": approval.decided_by_name,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "reason": approval.reason,
        "can_decide": can_decide,
    }


def _reason(value: Any, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInputError.field("reason", "is required when rejecting")
        return None
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise InvalidInputError.field("reason", f"must be text of at most {MAX_REASON} characters")
    return value.strip()


class ApprovalService:
    """List, decide and expire approvals."""

    def __init__(self, session: AsyncSession, dispatcher: Dispatcher | None = None) -> None:
        self.session = session
        self.dispatcher = dispatcher

    async def is_approver(self, actor: Actor) -> bool:
        """True for platform admins and holders (in their organization) of a role that approves some workflow.

        What the navigation uses to offer the approvals page; deciding checks each approval's own rules.
        """
        if actor.is_superuser:
            return True
        if actor.acting_org_id is None:
            return False
        held = await role_names(self.session, actor.user_id, actor.acting_org_id)
        return bool(held) and bool(held & await approver_role_names(self.session))

    async def _may_decide(self, actor: Actor, approval: ExecutionApproval) -> bool:
        if approval.requested_by == actor.user_id and not approval.allow_self_approval:
            return False
        return await may_approve(self.session, actor, approval.approver_role, approval.organization_id)

    async def _may_see(self, actor: Actor, approval: ExecutionApproval) -> bool:
        if actor.is_superuser:
            return actor.acting_org_id is None or approval.organization_id == actor.acting_org_id
        if approval.organization_id != actor.acting_org_id:
            return False
        if approval.requested_by == actor.user_id:
            return True
        return await may_approve(self.session, actor, approval.approver_role, approval.organization_id)

    async def _view(self, actor: Actor, approval: ExecutionApproval) -> ApprovalView:
        execution = await self.session.get(Execution, approval.execution_id)
        can = approval.status == WAITING and await self._may_decide(actor, approval)
        return approval_view(approval, execution.status if execution else None, can)

    async def list(self, actor: Actor, status: str | None = WAITING, limit: int = 200) -> builtins.list[ApprovalView]:
        """Approvals the actor may decide or asked for, newest first (``status`` None: any).

        Raises:
            InvalidInputError: Unknown status, or a limit out of range.
        """
        if status is not None and status not in STATUSES:
            raise InvalidInputError.field("status", f"must be one of {', '.join(STATUSES)}")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError.field("limit", "must be between 1 and 1000")
        stmt = select(ExecutionApproval).order_by(col(ExecutionApproval.requested_at).desc())
        if status is not None:
            stmt = stmt.where(col(ExecutionApproval.status) == status)
        if not actor.is_superuser or actor.acting_org_id is not None:
            stmt = stmt.where(col(ExecutionApproval.organization_id) == actor.acting_org_id)
        if not actor.is_superuser:
            held = builtins.list(await role_names(self.session, actor.user_id, actor.acting_org_id))
            stmt = stmt.where(
                (col(ExecutionApproval.requested_by) == actor.user_id) | col(ExecutionApproval.approver_role).in_(held)
            )
        rows = (await self.session.execute(stmt.limit(limit))).scalars()
        return [await self._view(actor, row) for row in rows]

    async def _get(self, actor: Actor, execution_id: str, lock: bool = False) -> ExecutionApproval:
        stmt = select(ExecutionApproval).where(col(ExecutionApproval.execution_id) == execution_id)
        if lock:
            stmt = stmt.with_for_update()
        approval = (await self.session.execute(stmt)).scalars().first() if len(execution_id) <= 36 else None
        if approval is None or not await self._may_see(actor, approval):
            raise NotFoundError(f"Approval {execution_id!r} not found.")
        return approval

    async def get(self, actor: Actor, execution_id: str) -> ApprovalView:
        """One approval the actor may see (its requester, an approver, a platform admin).

        Raises:
            NotFoundError: Unknown or not visible (the same answer).
        """
        return await self._view(actor, await self._get(actor, execution_id))

    async def decide(self, actor: Actor, execution_id: str, approve: bool, reason: Any = None) -> ApprovalView:
        """Approve (the run becomes Pending and is dispatched) or reject (it ends Cancelled with the reason).

        Commits; on approval the run is handed to the dispatcher after the commit.

        Raises:
            NotFoundError: Not visible to the actor.
            PermissionDeniedError: Not an approver, or the requester without self-approval.
            ConflictError: Already decided, expired or cancelled.
            InvalidInputError: A bad reason (a rejection needs one).
        """
        if approve and self.dispatcher is None:
            raise RuntimeError("ApprovalService.decide needs a dispatcher to release approved runs")
        text = _reason(reason, required=not approve)
        approval = await self._get(actor, execution_id, lock=True)
        if approval.status == WAITING and approval.expires_at <= utcnow():
            await self._expire([approval.execution_id])
            await self.session.commit()
            raise ConflictError("This approval expired before it was decided; the run was cancelled.")
        if approval.status != WAITING:
            raise ConflictError(f"This run is not waiting for approval (the approval is {approval.status}).")
        if approval.requested_by == actor.user_id and not approval.allow_self_approval:
            raise PermissionDeniedError("You asked for this run: another approver must decide it.")
        if not await may_approve(self.session, actor, approval.approver_role, approval.organization_id):
            raise PermissionDeniedError("You are not an approver of this workflow.")
        executions = ExecutionService(self.session, self.dispatcher)
        if approve:
            await close_approval(self.session, execution_id, "approved", actor, text)
            released = await self.session.execute(
                update(Execution)
                .where(
                    col(Execution.id) == execution_id,
                    col(Execution.status) == ExecutionStatus.AWAITING_APPROVAL.value,
                )
                .values(status=ExecutionStatus.PENDING.value)
            )
            if not released.rowcount:  # type: ignore[attr-defined]
                raise ConflictError("This run is not waiting for approval any more.")
        else:
            await close_approval(self.session, execution_id, "rejected", actor, text)
            await executions.finish(
                execution_id,
                status=ExecutionStatus.CANCELLED.value,
                error_message=f"Rejected by {actor.email}: {text}",
                error_type="ApprovalRejected",
                user_error=True,
            )
        details = {
            "workflow": approval.workflow_name,
            "decision": "approved" if approve else "rejected",
            "reason": text,
            "requested_by": approval.requested_by_name,
        }
        await audit.record(
            self.session, actor, audit.APPROVAL_DECIDED, "execution", execution_id, approval.organization_id, details
        )
        await self.session.commit()
        execution = await self.session.get(Execution, execution_id, populate_existing=True)
        assert execution is not None
        if approve:
            await executions.release_approved(execution)
        await self.session.refresh(approval)
        return approval_view(approval, execution.status, False)

    async def _expire(self, execution_ids: builtins.list[str]) -> None:
        executions = ExecutionService(self.session)
        for execution_id in execution_ids:
            if await close_approval(self.session, execution_id, "expired", None, EXPIRED):
                await executions.finish(
                    execution_id,
                    status=ExecutionStatus.CANCELLED.value,
                    error_message=EXPIRED,
                    error_type="ApprovalExpired",
                    user_error=True,
                )

    async def expire_due(self, now: datetime | None = None) -> builtins.list[str]:
        """End every approval past its expiry: the run ends Cancelled ("approval expired"). Does not commit.

        Returns:
            The execution ids that expired.
        """
        stmt = select(col(ExecutionApproval.execution_id)).where(
            col(ExecutionApproval.status) == WAITING, col(ExecutionApproval.expires_at) <= (now or utcnow())
        )
        due = builtins.list((await self.session.execute(stmt)).scalars())
        await self._expire(due)
        return due
