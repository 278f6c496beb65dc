"""Execution pages: history with filters, detail with live logs (SSE), cancel and re-run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, ServerSentEvent, ServerSentEventMessage, Template

from app.db import read_transaction
from app.engine.live_lines import unstored_lines
from app.models import Execution, Form
from app.services.actor import Actor
from app.services.errors import InvalidInputError, whole_number
from app.services.executions.history import encode_cursor
from app.services.executions.log_limits import message_bytes
from app.services.executions.service import MAX_OFFSET, TERMINAL, ExecutionService, execution_view
from app.services.forms.service import FormService
from app.services.identity.organizations import OrganizationService
from app.services.identity.users import UserService
from app.services.workflows.catalogue import WorkflowService
from app.web.api.executions import buffered_view, catch_up, log_view
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, layout_context, render_string
from app.web.pages.results import duration_text, result_view
from bifrost.enums import ExecutionStatus

PAGE_SIZE = 50
MAX_LOG_LINES = 5000
_KEEPALIVE_SECONDS = 15.0
# After the last event the stream stays open this long, so the browser closes it first
# (a server-side close would make EventSource report an error and reconnect).
_CLOSE_GRACE_SECONDS = 10.0


def _tail(lines: list[dict[str, Any]], max_lines: int, max_bytes: int) -> list[dict[str, Any]]:
    """The last of ``lines`` that fit in ``max_lines`` and ``max_bytes`` of messages (at least one)."""
    size = 0
    start = len(lines)
    while start > 0 and len(lines) - start < max_lines:
        size += message_bytes(lines[start - 1]["message"])
        if size > max_bytes and start < len(lines):
            break
        start -= 1
    return lines[start:]


def detail_context(execution: Execution, actor: Actor, org_name: str | None) -> dict[str, Any]:
    """What the status and result partials show about one execution."""
    view = execution_view(execution, actor)
    return {
        "e": view,
        "kind": execution.kind,
        "org_name": org_name,
        "duration": duration_text(execution.duration_ms),
        "result": result_view(execution.result) if execution.status == ExecutionStatus.COMPLETED.value else None,
        "done": execution.status in TERMINAL,
    }


async def _forms_of(session: Any, actor: Actor, execution: Execution) -> list[Form]:
    """The custom forms of ``execution``'s workflow the actor may use (active, visible), for "Edit in".

    A run started from a custom form records it (``form_id``): "Edit and run" reopens that one.
    """
    if execution.trigger != "form" or execution.kind != "workflow":
        return []
    return [
        form
        for form in await FormService(session).list(actor)
        if form.workflow_id in (execution.workflow_id, execution.workflow_name) and form.is_active
    ]


# The history's "Show" filter: runs people started (default), data-provider lookups, or both.
KINDS = ("workflow", "data_provider", "all")


class ExecutionPages(PageController):
    """``/executions``: what ran, how it went, and doing it again."""

    path = "/executions"

    @get("/")
    async def history(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        workflow: str = "",
        status: str = "",
        user: str = "",
        start_date: str = "",
        end_date: str = "",
        kind: str = Parameter(default="workflow", max_length=20),
        page: int = Parameter(default=1, ge=1, le=100_000),
        cursor: str = "",
        before: str = "",
    ) -> Template:
        """Executions newest first, filtered by workflow, status, user (admins) and dates.

        Data-provider lookups (a form filling its choices) are left out unless ``kind`` asks for them
        ("data_provider" or "all"): they would crowd out the runs people started.

        "Older" and "Newer" carry a cursor (the last or first row shown), so every page costs one
        page of index reads however far back it is; ``page`` (an offset) still works for old links.
        """
        filters = {
            "workflow": workflow.strip(),
            "status": status,
            "user": user,
            "start_date": start_date,
            "end_date": end_date,
            "kind": kind if kind != "workflow" else "",
        }
        error = None if kind in KINDS else f"kind: choose one of {', '.join(KINDS)}"
        rows: list[Execution] = []
        following = None
        platform = get_platform(request.app.state)
        # A long read must not hold the connection runs use (SQLite): the history is read on its own.
        async with read_transaction(platform.sessions) as session:
            try:
                if error:
                    raise InvalidInputError(error)
                rows, following = await ExecutionService(session).list_page(
                    actor,
                    workflow_name=filters["workflow"] or None,
                    status=status or None,
                    start_date=start_date or None,
                    end_date=end_date or None,
                    limit=PAGE_SIZE,
                    offset=0 if cursor or before else (page - 1) * PAGE_SIZE,
                    executed_by=(user or None) if actor.is_superuser else None,
                    cursor=cursor or None,
                    before=before or None,
                    kind=None if kind == "all" else kind,
                )
            except InvalidInputError as exc:
                error = str(exc)
        async with db(request) as session:
            names = sorted({w.name for w in await WorkflowService(session).list(actor)})
            users = await UserService(session).list(actor, actor.acting_org_id) if actor.is_superuser else []
            layout = await layout_context(request, session, actor)
        query = urlencode({k: v for k, v in filters.items() if v})
        # Older: continue after the last row shown; Newer: go back before the first one.
        if before:
            has_next, has_prev = bool(rows), following is not None
            older, newer = (encode_cursor(rows[-1]) if rows else None), following
        else:
            has_next, has_prev = following is not None, bool(cursor) or page > 1
            older, newer = following, (encode_cursor(rows[0]) if rows and has_prev else None)
        return Template(
            "pages/executions.html",
            context={
                **layout,
                "executions": [
                    {**execution_view(e, actor), "kind": e.kind, "duration": duration_text(e.duration_ms)} for e in rows
                ],
                "filters": filters,
                "kind": kind,
                "org_names": {o.id: o.name for o in layout.get("orgs", [])},
                "error": error,
                "workflow_names": names,
                "users": users,
                "statuses": [s.value for s in ExecutionStatus],
                "page": page,
                "has_next": has_next and older is not None,
                "has_prev": has_prev and newer is not None,
                "older_query": urlencode({"cursor": older}) if older else "",
                "newer_query": urlencode({"before": newer}) if newer else "",
                "query": query,
            },
        )

    @get("/{execution_id:str}")
    async def detail(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Template:
        """One execution: parameters, who ran it, status, logs and result (live while it runs)."""
        platform = get_platform(request.app.state)
        page_bytes = platform.settings.log_page_bytes
        buffered = platform.dispatcher.buffered_logs(execution_id)
        async with db(request) as session:
            service = ExecutionService(session)
            execution = await service.get(actor, execution_id)
            # Only the tail is read: a huge log stays readable, the page light and the server free.
            logs = [
                log_view(r)
                for r in await service.log_tail(actor, execution_id, limit=MAX_LOG_LINES, max_bytes=page_bytes)
            ]
            org = await OrganizationService(session).cached(execution.organization_id)
            layout = await layout_context(request, session, actor)
            forms = await _forms_of(session, actor, execution)
        if execution.status not in TERMINAL:
            last = logs[-1]["seq"] if logs else -1
            logs += [buffered_view(row) for row in buffered if row["seq"] > last]
        logs = _tail(logs, MAX_LOG_LINES, page_bytes)
        return Template(
            "pages/execution.html",
            context={
                **layout,
                **detail_context(execution, actor, org.name if org else None),
                "logs": logs,
                "forms": forms,
                "form_id": execution.form_id,
                # Lines are numbered from 0 without gaps: the first one shown says how many came before.
                "hidden_lines": logs[0]["seq"] if logs else 0,
                "last_seq": logs[-1]["seq"] if logs else -1,
            },
        )

    @get("/{execution_id:str}/live")
    async def live(
        self, request: Request[Any, Any, Any], actor: Actor, execution_id: str, after: int = -1
    ) -> ServerSentEvent:
        """Server-sent events of HTML fragments: ``log`` lines, ``status``, then ``result`` and ``done``."""
        last_event_id = request.headers.get("last-event-id", "")
        resumed = whole_number(last_event_id)
        if resumed is not None:  # a reconnecting browser: resume after the last line it got
            after = max(after, resumed)
        if not -1 <= after <= MAX_OFFSET:
            raise InvalidInputError.field("after", f"must be between -1 and {MAX_OFFSET}")
        platform = get_platform(request.app.state)
        # Subscribe before reading what is stored, so no line falls between the two.
        queue = platform.hub.subscribe(execution_id)
        buffered = unstored_lines(platform, execution_id)  # here, or kept from the bus (another node's run)
        try:
            async with db(request) as session:
                execution = await ExecutionService(session).get(actor, execution_id)
        except BaseException:
            platform.hub.unsubscribe(execution_id, queue)
            raise

        def log_event(row: dict[str, Any]) -> ServerSentEventMessage:
            html = render_string(request, "partials/_log_line.html", line=row)
            return ServerSentEventMessage(event="log", data=html, id=str(row["seq"]))

        async def final_events() -> AsyncIterator[ServerSentEventMessage]:
            async with db(request) as session:
                done = await ExecutionService(session).get(actor, execution_id)
                org = await OrganizationService(session).cached(done.organization_id)
            context = detail_context(done, actor, org.name if org else None)
            # The facts table was rendered before the run ended: its start and end times follow (out of band).
            status = render_string(request, "partials/_execution_status.html", **context)
            status += render_string(request, "partials/_execution_started.html", oob=True, **context)
            status += render_string(request, "partials/_execution_completed.html", oob=True, **context)
            # The page said "No log lines yet" while it ran; a finished run has none to wait for.
            status += '<li class="empty" id="logs-empty" hx-swap-oob="true">No log lines.</li>'
            yield ServerSentEventMessage(event="status", data=status)
            yield ServerSentEventMessage(
                event="result", data=render_string(request, "partials/_execution_result.html", **context)
            )
            yield ServerSentEventMessage(event="done", data="done")
            await asyncio.sleep(_CLOSE_GRACE_SECONDS)

        def status_event(status: str) -> ServerSentEventMessage:
            context = {"e": {"status": status, "execution_id": execution_id}, "done": False}
            return ServerSentEventMessage(
                event="status", data=render_string(request, "partials/_execution_status.html", **context)
            )

        # A line is only ever written by a running execution, but the dispatcher may publish the first line
        # before the Running status (a worker logs at once; the status goes through the database first). The
        # viewer must never see "Pending" above a log line: before the first line, Running is sent if it was
        # not yet (and the real status event, when it comes, is not repeated).
        running_shown = execution.status != ExecutionStatus.PENDING.value

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            nonlocal running_shown
            last_seq = after
            try:
                # What the page did not show yet, page by page (see catch_up).
                async for row in catch_up(request, actor, execution_id, last_seq, buffered):
                    if not running_shown and execution.status not in TERMINAL:
                        running_shown = True
                        yield status_event(ExecutionStatus.RUNNING.value)
                    last_seq = row["seq"]
                    yield log_event(row)
                if execution.status in TERMINAL:
                    async for message in final_events():
                        yield message
                    return
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), _KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keep-alive")
                        continue
                    if event["type"] == "log":
                        if event["seq"] > last_seq + 1:
                            # Live events were lost (a full queue while this viewer lagged): read them back.
                            buffered_now = unstored_lines(platform, execution_id)
                            async for row in catch_up(request, actor, execution_id, last_seq, buffered_now):
                                last_seq = row["seq"]
                                yield log_event(row)
                        if event["seq"] <= last_seq:
                            continue
                        if not running_shown:
                            running_shown = True
                            yield status_event(ExecutionStatus.RUNNING.value)
                        last_seq = event["seq"]
                        yield log_event(event)
                    elif event.get("done"):
                        # Every line is stored before the end is published: send any the queue lost.
                        async for row in catch_up(request, actor, execution_id, last_seq, []):
                            last_seq = row["seq"]
                            yield log_event(row)
                        async for message in final_events():
                            yield message
                        return
                    else:
                        status = str(event.get("status") or "")
                        if status == ExecutionStatus.RUNNING.value:
                            if running_shown and last_seq > after:
                                continue  # already announced before the first line
                            running_shown = True
                        yield status_event(status)
            finally:
                platform.hub.unsubscribe(execution_id, queue)

        return ServerSentEvent(events())

    @post("/{execution_id:str}/cancel", status_code=303)
    async def cancel(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Redirect:
        """Cancel a pending or running execution, then show it."""
        platform = get_platform(request.app.state)
        try:
            async with db(request) as session:
                await ExecutionService(session, platform.dispatcher).cancel(actor, execution_id)
        except InvalidInputError:
            pass  # it ended meanwhile: its page shows how
        else:
            await platform.dispatcher.wait(execution_id, 10.0)
        return Redirect(f"/executions/{execution_id}", status_code=303)

    @post("/{execution_id:str}/rerun", status_code=303)
    async def rerun(self, request: Request[Any, Any, Any], actor: Actor, execution_id: str) -> Redirect:
        """Run the same workflow again with the same (validated) parameters, in the same organization."""
        platform = get_platform(request.app.state)
        async with db(request) as session:
            service = ExecutionService(session, platform.dispatcher)
            previous = await service.get(actor, execution_id)
            org = previous.organization_id or ("GLOBAL" if actor.is_superuser else None)
            execution = await service.submit(
                previous.workflow_name, previous.input_data, actor, org, trigger="form", kind=previous.kind
            )
        return Redirect(f"/executions/{execution.id}", status_code=303)
