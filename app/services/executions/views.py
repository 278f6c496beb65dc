"""API shapes of the executions domain: the TypedDicts the view functions build and the routes return.

A TypedDict is a plain ``dict`` at run time, so the views cost nothing extra (``execute?wait=true`` is
benchmarked) and the JSON stays byte-identical, while Litestar documents every key in ``/schema``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class ExecutionView(TypedDict):
    """One execution as the API and SDK return it (``bifrost.types.WorkflowExecution`` fields plus extras)."""

    execution_id: str
    workflow_name: str
    workflow_id: str
    org_id: str | None
    executed_by: str
    executed_by_name: str
    trigger: str
    status: str
    input_data: dict[str, Any]
    result: Any
    error_message: str | None
    error_type: str | None
    user_error: bool
    traceback: str | None
    duration_ms: int | None
    created_at: str
    started_at: str | None
    completed_at: str | None


class OrganizationRef(TypedDict):
    """The organization an execution context acts in."""

    id: str
    name: str
    is_active: bool
    domain: str | None


class ExecutionContextView(TypedDict):
    """The ``bifrost.context`` fields of a run (or of a caller outside any run: ``execution_id`` empty)."""

    user_id: str
    email: str
    name: str
    org_id: str | None
    org_name: str | None
    organization: OrganizationRef | None
    scope: str
    execution_id: str
    is_platform_admin: bool
    is_function_key: bool


class ScheduleView(TypedDict):
    """A cron schedule with its workflow's availability, next and last run, and status."""

    id: str
    workflow_id: str
    workflow_name: str
    workflow_active: bool
    organization_id: str | None
    organization_name: str | None
    scope: str
    source: str
    cron: str
    declared_cron: str | None
    timezone: str
    params: dict[str, Any]
    enabled: bool
    overlap_policy: str
    next_run_at: str | None
    last_run_at: str | None
    last_outcome: str | None
    last_execution_id: str | None
    last_execution_status: str | None
    last_detail: str | None
    status: str
    runs_as: str
    created_at: str
    updated_at: str


class ScheduleRunView(TypedDict):
    """One firing of a schedule."""

    id: str
    schedule_id: str
    scheduled_for: str
    fired_at: str
    outcome: str
    execution_id: str | None
    execution_status: str | None
    detail: str | None


class ApprovalView(TypedDict):
    """A run that waits (or waited) for approval: what, with which parameters, asked by whom, decided how."""

    execution_id: str
    workflow_name: str
    workflow_id: str
    org_id: str | None
    requested_by: str
    requested_by_name: str
    trigger: str
    parameters: dict[str, Any]
    status: str
    execution_status: str | None
    approver_role: str | None
    allow_self_approval: bool
    requested_at: str
    expires_at: str
    decided_by: str | None
    decided_by_name: str | None
    decided_at: str | None
    reason: str | None
    can_decide: bool


class DecisionBody(TypedDict, total=False):
    """An approver's decision: the reason (required to reject)."""

    reason: str | None
