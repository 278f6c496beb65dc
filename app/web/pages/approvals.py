"""``/approvals``: runs that wait for an approver, with their parameters and requester; approve or reject.

The list is the approvers' (platform admins, holders of a role that approves some workflow). One
approval's page is also open to its requester, so a waiting run can link to it. Decisions are plain
form posts (CSRF token) that go through the same path as ``POST /api/approvals/{id}/approve|reject``:
an approved run is dispatched, a chat waiting for it goes on.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError, PermissionDeniedError
from app.services.executions.approvals import STATUSES, ApprovalService
from app.services.executions.views import ApprovalView
from app.web.api.approvals import decide
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context

_FILTERS = (*STATUSES, "any")


def _problem(exc: InvalidInputError) -> str:
    if exc.errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return str(exc)


class ApprovalPages(PageController):
    """The approvals list, one approval, and the approve / reject form posts."""

    path = "/approvals"

    @get("/")
    async def index(self, request: Request[Any, Any, Any], actor: Actor, status: str = "waiting") -> Template:
        """What waits (or, by ``status``, what was decided), newest first; approvers only."""
        async with db(request) as session:
            service = ApprovalService(session)
            if not await service.is_approver(actor):
                raise PermissionDeniedError("Only approvers see the approvals page.")
            error = None
            if status not in _FILTERS:
                error, status = f"status: must be one of {', '.join(_FILTERS)}", "waiting"
            approvals = await service.list(actor, None if status == "any" else status)
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/approvals.html",
            context={**layout, "approvals": approvals, "status": status, "statuses": _FILTERS, "error": error},
            status_code=422 if error else 200,
        )

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        execution_id: str,
        error: str | None = None,
        reason: str = "",
        status_code: int = 200,
    ) -> Template:
        async with db(request) as session:
            approval: ApprovalView = await ApprovalService(session).get(actor, execution_id)
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/approval.html",
            context={**layout, "a": approval, "error": error, "reason": reason},
            status_code=status_code,
        )

    @get("/{execution_id:str}")
    async def detail(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Template:
        """One approval: its requester, approvers and platform admins see it (others: 404)."""
        return await self._detail(request, actor, execution_id)

    async def _decide(
        self, request: Request[Any, Any, Any], actor: Actor, execution_id: str, approve: bool
    ) -> Template | Redirect:
        form = await request.form()
        reason = form_text(form, "reason")
        back = form_text(form, "back")
        try:
            view = await decide(request, actor, execution_id, approve, reason)
        except InvalidInputError as exc:
            return await self._detail(request, actor, execution_id, _problem(exc), reason, 422)
        except (PermissionDeniedError, ConflictError) as exc:
            # Shown on the approval's page with its state, so the approver sees why and what it is now.
            code = 403 if isinstance(exc, PermissionDeniedError) else 409
            return await self._detail(request, actor, execution_id, str(exc), reason, code)
        verb = "Approved" if approve else "Rejected"
        flash(request, f"{verb}: {view['workflow_name']} requested by {view['requested_by_name']}.")
        return Redirect("/approvals" if back == "list" else f"/approvals/{execution_id}", status_code=303)

    @post("/{execution_id:str}/approve", status_code=200)
    async def approve(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Template | Redirect:
        """Approve (an optional reason is kept): the run starts."""
        return await self._decide(request, actor, execution_id, True)

    @post("/{execution_id:str}/reject", status_code=200)
    async def reject(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Template | Redirect:
        """Reject with a reason: the run ends Cancelled with it."""
        return await self._decide(request, actor, execution_id, False)


APPROVAL_PAGE_HANDLERS = [ApprovalPages]
