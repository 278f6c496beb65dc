"""Workflow execution history (``bifrost.executions``)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from datetime import date, datetime

from bifrost import _client
from bifrost.errors import ValidationError
from bifrost.types import WorkflowExecution, _SDKModel


class LogLine(_SDKModel):
    """One stored log line of an execution (``logging`` record or printed line).

    A run's stored log is capped by the platform; past the cap a line with ``logger``
    ``bifrost.log_limit`` marks the spot and one with ``bifrost.log_dropped`` counts what was dropped.
    """

    seq: int
    timestamp: datetime
    level: str
    logger: str
    message: str


def _iso(value: str | date | datetime | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class ExecutionPage(_SDKModel):
    """One page of :func:`list_page`: the executions, newest first, and the cursor of the next page."""

    executions: builtins.list[WorkflowExecution]
    next_cursor: str | None = None


async def list_page(
    workflow_name: str | None = None,
    status: str | None = None,
    start_date: str | date | datetime | None = None,
    end_date: str | date | datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> ExecutionPage:
    """One page of executions visible to the caller, newest first, and the cursor of the next.

    Pass ``next_cursor`` back as ``cursor`` (with the same filters) for the following page: each page
    costs the same however far back it is. ``next_cursor`` is None on the last page.

    Args:
        workflow_name: Only executions of this workflow.
        status: Only this status.
        start_date: Only executions started at or after this date/time.
        end_date: Only executions started before or at this date/time.
        limit: Page size (1-1000).
        cursor: Where the previous page ended (its ``next_cursor``); None for the newest.

    Returns:
        The page.
    """
    status_value = getattr(status, "value", status)
    response = await _client.request(
        "GET",
        "/executions",
        params={
            "workflow_name": workflow_name,
            "status": status_value,
            "start_date": _iso(start_date),
            "end_date": _iso(end_date),
            "limit": limit,
            "cursor": cursor,
        },
    )
    return ExecutionPage(
        executions=[WorkflowExecution.model_validate(r) for r in response.json()],
        next_cursor=response.headers.get("x-next-cursor"),
    )


async def list(
    workflow_name: str | None = None,
    status: str | None = None,
    start_date: str | date | datetime | None = None,
    end_date: str | date | datetime | None = None,
    limit: int = 50,
    *,
    cursor: str | None = None,
) -> builtins.list[WorkflowExecution]:
    """List executions visible to the caller, newest first.

    Args:
        workflow_name: Only executions of this workflow.
        status: Only this status (``"Failed"``, ``"FAILED"`` and ``ExecutionStatus.FAILED`` all work).
        start_date: Only executions started at or after this date/time.
        end_date: Only executions started before or at this date/time (a bare date includes that whole day).
        limit: At most this many (1-1000).
        cursor: Continue where a :func:`list_page` ended (its ``next_cursor``; an extension of the spec).

    Returns:
        The matching executions.
    """
    page = await list_page(workflow_name, status, start_date, end_date, limit, cursor)
    return page.executions


async def iter_executions(
    workflow_name: str | None = None,
    status: str | None = None,
    start_date: str | date | datetime | None = None,
    end_date: str | date | datetime | None = None,
    page_size: int = 200,
) -> AsyncIterator[WorkflowExecution]:
    """Yield every matching execution, newest first, reading page after page with a cursor.

    Args:
        workflow_name: Only executions of this workflow.
        status: Only this status.
        start_date: Only executions started at or after this date/time.
        end_date: Only executions started before or at this date/time.
        page_size: Executions per request (1-1000).
    """
    cursor: str | None = None
    while True:
        page = await list_page(workflow_name, status, start_date, end_date, page_size, cursor)
        for execution in page.executions:
            yield execution
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def get(execution_id: str) -> WorkflowExecution:
    """Return one execution.

    Raises:
        NotFoundError: If it does not exist in the caller's scope.
    """
    return WorkflowExecution.model_validate(await _client.call("GET", f"/executions/{_client.segment(execution_id)}"))


async def _log_page(execution_id: str, after: int, limit: int | None) -> tuple[builtins.list[LogLine], int | None]:
    """One page of stored lines and the cursor of the next (None: nothing more is stored now)."""
    response = await _client.request(
        "GET", f"/executions/{_client.segment(execution_id)}/logs", params={"after": after, "limit": limit}
    )
    following = response.headers.get("x-next-after")
    return [LogLine.model_validate(row) for row in response.json()], None if following is None else int(following)


async def iter_logs(execution_id: str, after: int = -1) -> AsyncIterator[LogLine]:
    """Yield the stored log lines of an execution in order, reading them from the platform page by page.

    Args:
        execution_id: The execution.
        after: Only lines whose ``seq`` is greater (the last one already read; -1 for all).

    Raises:
        NotFoundError: If it does not exist in the caller's scope.
    """
    cursor: int | None = after
    while cursor is not None:
        page, cursor = await _log_page(execution_id, cursor, None)
        for line in page:
            yield line


async def logs(execution_id: str, after: int = -1, limit: int | None = None) -> builtins.list[LogLine]:
    """Return the stored log lines of an execution, in order (read page by page, like :func:`iter_logs`).

    Args:
        execution_id: The execution.
        after: Only lines whose ``seq`` is greater (the last one already read; -1 for all).
        limit: At most this many lines (None: every stored line).

    Raises:
        NotFoundError: If it does not exist in the caller's scope.
        ValidationError: If ``limit`` is below 1.
    """
    if limit is not None and limit < 1:
        raise ValidationError("limit: must be at least 1", [{"field": "limit", "message": "must be at least 1"}])
    lines: builtins.list[LogLine] = []
    cursor: int | None = after
    while cursor is not None and (limit is None or len(lines) < limit):
        page, cursor = await _log_page(execution_id, cursor, None if limit is None else limit - len(lines))
        lines.extend(page)
    return lines
