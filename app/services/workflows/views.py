"""Typed views of the workflow catalogue (plain dicts at run time, documented in ``/schema``)."""

from __future__ import annotations

from typing import Any, TypedDict


class WorkflowDetail(TypedDict):
    """A workflow or data provider: the SDK's ``WorkflowMetadata`` fields plus parameters and endpoint options."""

    id: str
    name: str
    description: str | None
    category: str
    tags: list[str]
    execution_mode: str
    timeout_seconds: int
    schedule: str | None
    endpoint_enabled: bool
    is_tool: bool
    time_saved: int
    kind: str
    allowed_methods: list[str]
    public_endpoint: bool
    tool_description: str | None
    cache_ttl_seconds: int
    parameters: list[dict[str, Any]]
    params_schema: dict[str, Any]
    source_file: str | None
    updated_at: str


class SyncCounts(TypedDict):
    """What a workspace sync changed."""

    added: int
    updated: int
    removed: int
    errors: int


class DeclaredPolicy(TypedDict):
    """What the workflow's decorator declares (``access=``, ``needs_approval=``)."""

    access: str
    roles: list[str]
    needs_approval: bool


class PolicyView(TypedDict):
    """A workflow's effective access policy and approval settings, with what is declared and what an admin set."""

    workflow: str
    access: str
    roles: list[str]
    organizations: list[str] | None
    needs_approval: bool
    approver_role: str | None
    allow_self_approval: bool
    schedules_skip_approval: bool
    declared: DeclaredPolicy
    overridden: list[str]


class PolicyBody(TypedDict, total=False):
    """An admin's change of a workflow's policy; a field set to null follows the decorator again."""

    access: str | None
    roles: list[str] | None
    organizations: list[str] | None
    needs_approval: bool | None
    approver_role: str | None
    allow_self_approval: bool
    schedules_skip_approval: bool
