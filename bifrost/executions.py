"""Workflow execution history (``bifrost.executions``)."""

from __future__ import annotations

import builtins
from datetime import date, datetime

from bifrost import _client
from bifrost.types import WorkflowExecution


def _iso(value: str | date | datetime | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


async def list(
    workflow_name: str | None = None,
    status: str | None = None,
    start_date: str | date | datetime | None = None,
    end_date: str | date | datetime | None = None,
    limit: int = 50,
) -> builtins.list[WorkflowExecution]:
    """List executions visible to the caller, newest first.

    Args:
        workflow_name: Only executions of this workflow.
        status: Only this status (``"Failed"``, ``"FAILED"`` and ``ExecutionStatus.FAILED`` all work).
        start_date: Only executions started at or after this date/time.
        end_date: Only executions started before or at this date/time (a bare date includes that whole day).
        limit: At most this many (1-1000).

    Returns:
        The matching executions.
    """
    status_value = getattr(status, "value", status)
    rows = await _client.call(
        "GET",
        "/executions",
        params={
            "workflow_name": workflow_name,
            "status": status_value,
            "start_date": _iso(start_date),
            "end_date": _iso(end_date),
            "limit": limit,
        },
    )
    return [WorkflowExecution.model_validate(r) for r in rows]


async def get(execution_id: str) -> WorkflowExecution:
    """Return one execution.

    Raises:
        NotFoundError: If it does not exist in the caller's scope.
    """
    return WorkflowExecution.model_validate(await _client.call("GET", f"/executions/{_client.segment(execution_id)}"))
