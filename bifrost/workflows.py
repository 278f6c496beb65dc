"""Workflow metadata and execution status (``bifrost.workflows``)."""

from __future__ import annotations

import builtins
from typing import Any

from bifrost import _client
from bifrost.types import WorkflowExecution, WorkflowMetadata


async def list() -> builtins.list[WorkflowMetadata]:
    """List the workflows of the workspace."""
    rows = await _client.call("GET", "/workflows")
    return [WorkflowMetadata.model_validate(r) for r in rows]


async def get(execution_id: str) -> WorkflowExecution:
    """Return the execution with this id (as the spec defines ``workflows.get``)."""
    return WorkflowExecution.model_validate(await _client.call("GET", f"/executions/{_client.segment(execution_id)}"))


async def execute(workflow_name: str, params: dict[str, Any] | None = None, *, wait: bool = True) -> WorkflowExecution:
    """Run another workflow through the platform (beyond the spec).

    Args:
        workflow_name: Name of the workflow to run.
        params: Its parameters.
        wait: Wait for the result (True) or return the PENDING execution.

    Returns:
        The execution record.
    """
    body = await _client.call(
        "POST",
        f"/workflows/{_client.segment(workflow_name)}/execute",
        json={"params": params or {}},
        params={"wait": str(wait).lower()},
    )
    return WorkflowExecution.model_validate(body)
