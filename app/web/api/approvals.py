"""Approvals: runs waiting for an approver (``/api/approvals``), approve and reject with a reason."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from app.services.actor import Actor
from app.services.errors import InvalidInputError
from app.services.executions.approvals import ApprovalService
from app.services.executions.views import ApprovalView, DecisionBody
from app.web.api.chat import chat_runtime
from app.web.api.schemas import documented_body
from app.web.deps import db, get_platform


def _reason(data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InvalidInputError.field("body", 'must be a JSON object such as {"reason": "..."}')
    unknown = sorted(set(data) - {"reason"})
    if unknown:
        raise InvalidInputError.field(unknown[0], "unknown field; only 'reason' is accepted")
    return data.get("reason")


async def decide(
    request: Request[Any, Any, Any], actor: Actor, execution_id: str, approve: bool, reason: Any
) -> ApprovalView:
    """Decide an approval as ``actor``; an approved run is dispatched, a waiting chat is resumed."""
    platform = get_platform(request.app.state)
    async with db(request) as session:
        view = await ApprovalService(session, platform.dispatcher).decide(actor, execution_id, approve, reason)
    # A chat whose tool call waited for this run goes on now (in this process; others on their next message).
    await chat_runtime(request).resume_decided(execution_id)
    return view


class ApprovalController(Controller):
    """Approvals the caller may decide, or asked for."""

    path = "/approvals"
    tags = ["approvals"]

    @get("/")
    async def list_approvals(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        status: str | None = Parameter(
            default="waiting", description="waiting (default), approved, rejected, expired, cancelled, or any"
        ),
        limit: int = Parameter(default=200, description="At most this many, newest first (1-1000)"),
    ) -> list[ApprovalView]:
        """Approvals the caller may decide or asked for, newest first."""
        async with db(request) as session:
            return await ApprovalService(session).list(actor, None if status == "any" else status, limit)

    @get("/{execution_id:str}")
    async def get_approval(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> ApprovalView:
        """One approval (its requester, approvers and platform admins see it)."""
        async with db(request) as session:
            return await ApprovalService(session).get(actor, execution_id)

    @post("/{execution_id:str}/approve", status_code=200)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        execution_id: str,
        data: Annotated[Any, documented_body(DecisionBody, closed=True)] = None,
    ) -> ApprovalView:
        """Approve: the run becomes Pending and starts (an optional ``reason`` is kept)."""
        return await decide(request, actor, execution_id, True, _reason(data))

    @post("/{execution_id:str}/reject", status_code=200)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        execution_id: str,
        data: Annotated[Any, documented_body(DecisionBody, closed=True)] = None,
    ) -> ApprovalView:
        """Reject with a ``reason``: the run ends Cancelled with it and no code runs."""
        return await decide(request, actor, execution_id, False, _reason(data))


CONTROLLERS = [ApprovalController]
