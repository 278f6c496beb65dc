"""Chat tool calls of workflows that need approval: their runs wait for an approver, the chat shows it.

"Needs approval" is the workflow's setting (:mod:`app.services.workflows.access`), so the chat no
longer lets the person chatting approve their own call. When the model calls such a tool, its
turn ends with the call ``awaiting_approval``, and the run is submitted at once: it waits
``AwaitingApproval`` on the approvals page like a run from any other trigger. When an approver
decides (or the approval expires), :meth:`ChatRuntime.resume_decided` continues the conversation:
the model gets the run's result, or the rejection with its reason. In command mode (``/run``) the
outcome is written as the reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Execution
from app.models.access import ExecutionApproval
from app.models.ai import ChatConversation, ChatToolCall
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.chat.conversations import AWAITING
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.dispatch import Dispatcher
from app.services.executions.service import ExecutionService
from bifrost.enums import ExecutionStatus

# A decision per model call id: True (approved: the run's outcome goes to the model) or why it was denied.
Decisions = dict[str, "bool | str"]


@dataclass
class Resume:
    """What continues a conversation once the approvals its turn waited for are decided."""

    conversation_id: str
    user_id: str
    organization_id: str | None
    decisions: Decisions
    command_call_id: str | None = None  # a /run call: its outcome becomes the reply


async def submit_for_approval(
    session: AsyncSession, dispatcher: Dispatcher, call: ChatToolCall, actor: Actor
) -> str | None:
    """Submit a waiting call's run (it waits ``AwaitingApproval``); the error to show when it cannot be submitted."""
    try:
        execution = await ExecutionService(session, dispatcher).submit(
            call.workflow_name, call.arguments, actor, trigger="chat"
        )
    except InvalidInputError as exc:
        details = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in exc.errors) or str(exc)
        return f"Invalid arguments: {details}"
    except DomainError as exc:
        return str(exc)
    call.execution_id = execution.id
    if execution.status != ExecutionStatus.AWAITING_APPROVAL.value:
        call.status = "approved"  # the workflow no longer needs approval: it runs now
    call.updated_at = utcnow()
    return None


async def _denial(session: AsyncSession, execution: Execution) -> str:
    approval = await session.get(ExecutionApproval, execution.id)
    if approval is not None and approval.status == "rejected":
        return f"An approver rejected this call ({approval.reason}); it did not run."
    if approval is not None and approval.status == "expired":
        return "Nobody approved this call in time (approval expired); it did not run."
    return execution.error_message or f"The run ended {execution.status} before it was approved; it did not run."


async def decided(session: AsyncSession, execution_id: str, active: set[str]) -> Resume | None:
    """Mark the waiting chat call of a decided run; what continues its conversation, when nothing else waits.

    Args:
        session: An open transaction (the call's new status is written in it).
        execution_id: The run whose approval was decided (or expired).
        active: Conversations with a running turn (they are resumed later, on their next message).
    """
    stmt = select(ChatToolCall).where(
        col(ChatToolCall.execution_id) == execution_id, col(ChatToolCall.status) == AWAITING
    )
    call = (await session.execute(stmt)).scalars().first()
    execution = await session.get(Execution, execution_id)
    if call is None or execution is None or execution.status == ExecutionStatus.AWAITING_APPROVAL.value:
        return None
    conversation = await session.get(ChatConversation, call.conversation_id)
    if conversation is None or conversation.id in active:
        return None
    approval = await session.get(ExecutionApproval, execution_id)
    if approval is None or approval.status == "approved":
        call.status = "approved"
    else:
        call.status, call.error = "rejected", await _denial(session, execution)
    call.updated_at = utcnow()
    resume = Resume(conversation.id, conversation.user_id, conversation.organization_id, {})
    if call.model_call_id is None:
        resume.command_call_id = call.id
        return resume
    decisions = await batch_decisions(session, conversation.id, call.turn_id)
    if decisions is None:
        return None
    resume.decisions = decisions
    return resume


async def batch_decisions(session: AsyncSession, conversation_id: str, turn_id: str) -> Decisions | None:
    """The decisions of the calls one answer of the model made, or None while one still waits."""
    await session.flush()
    batch = (
        await session.execute(
            select(ChatToolCall).where(
                col(ChatToolCall.conversation_id) == conversation_id,
                col(ChatToolCall.turn_id) == turn_id,
                col(ChatToolCall.needs_approval).is_(True),
            )
        )
    ).scalars()
    decisions: Decisions = {}
    for other in batch:
        if other.status == AWAITING:
            return None
        if other.model_call_id:
            decisions[other.model_call_id] = True if other.status == "approved" else (other.error or "rejected")
    return decisions


async def decided_in(session: AsyncSession, conversation_id: str) -> list[str]:
    """Runs of a conversation's waiting calls that are decided already (expired, or decided elsewhere)."""
    stmt = (
        select(col(ChatToolCall.execution_id))
        .join(Execution, col(Execution.id) == col(ChatToolCall.execution_id))
        .where(
            col(ChatToolCall.conversation_id) == conversation_id,
            col(ChatToolCall.status) == AWAITING,
            col(Execution.status) != ExecutionStatus.AWAITING_APPROVAL.value,
        )
    )
    return [e for e in (await session.execute(stmt)).scalars() if e]
