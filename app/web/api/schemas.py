"""Response shapes built in the web layer itself (the service and engine views have theirs in their packages).

TypedDicts, like the service views: the handlers keep returning plain dicts (no conversion, the same bytes),
and Litestar turns the annotations into the ``/schema`` components. See docs/architecture.md, "Typed API schemas".
Request bodies that services check field by field are documented with :func:`documented_body`.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec
from litestar.params import Body, BodyKwarg

from app.services.executions.views import ExecutionView
from app.services.workflows.views import SyncCounts, WorkflowDetail


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with every ``#/$defs/...`` reference replaced by its definition (the body has no components)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def documented_body(shape: type, *, closed: bool = False) -> BodyKwarg:
    """A ``Body`` that documents the TypedDict ``shape`` in ``/schema`` and validates nothing.

    For ``data: Annotated[Any, documented_body(Shape)]``: the handler still receives the raw JSON value and the
    service checks it field by field, so a wrong field keeps its 422 naming the field (a typed ``data`` would
    make Litestar answer a generic 400 first). ``closed``: the service refuses unknown fields.
    """
    generated = msgspec.json.schema(shape)
    schema = _inline(generated, generated.get("$defs", {}))
    extra: dict[str, Any] = {
        "type": "object",
        "properties": schema["properties"],
        "required": schema.get("required") or None,
        "additional_properties": False if closed else None,
    }
    return Body(description=shape.__doc__, schema_extra={k: v for k, v in extra.items() if v is not None})


class Deleted(TypedDict):
    """Whether something was deleted (``false``: there was nothing to delete)."""

    deleted: bool


class DeletedCount(TypedDict):
    """How many documents a deletion removed."""

    deleted: int


# ----- auth ------------------------------------------------------------------------------------------
class ActorView(TypedDict):
    """Who the caller is and where they act."""

    user_id: str
    email: str
    name: str
    organization_id: str | None
    acting_org_id: str | None
    is_platform_admin: bool
    is_function_key: bool
    execution_id: str | None


class LoginResult(TypedDict):
    """The user a login opened a session for."""

    user_id: str
    email: str
    name: str


class LoggedOut(TypedDict):
    """The session ended."""

    logged_out: bool


# ----- workflows and executions ------------------------------------------------------------------------
class ExecuteAccepted(TypedDict):
    """A submitted run still queued or running: poll ``status_url``."""

    execution_id: str
    status: str
    status_url: str


class LogLine(TypedDict):
    """One captured log line of an execution."""

    seq: int
    timestamp: str
    level: str
    logger: str
    message: str


class WorkspaceErrorView(TypedDict):
    """A workspace file that failed to import."""

    file: str
    error: str
    traceback: str | None


class WorkspaceStatus(TypedDict):
    """Worker pool counts and the counts of the last workspace sync (empty before the first one)."""

    workers: dict[str, int]
    last_sync: dict[str, int]


class PublishResponse(TypedDict):
    """What ``POST /api/publish`` did (``app.engine.publish.PublishResult``)."""

    name: str
    kind: str
    file: str
    replaced: bool
    removed: list[str]
    workflow: WorkflowDetail
    sync: SyncCounts


class SchedulerStatus(TypedDict):
    """Whether this process fires schedules (holds the lock) and how many jobs it has."""

    running: bool
    leader: bool
    jobs: int


# ----- notebook runs ---------------------------------------------------------------------------------------
class NotebookRunStarted(ExecutionView):
    """The RUNNING execution of a notebook run, its SDK token (shown only here) and its ``context`` fields."""

    sdk_token: str
    context: dict[str, Any]


class NotebookLogsStored(TypedDict):
    """How many log lines were stored, and the sequence number of the last."""

    stored: int
    last_seq: int | None


# ----- request bodies the services check field by field (documented with documented_body) ---------------
class FormBody(TypedDict, total=False):
    """A form's fields (``name`` required on create; on change, absent fields stay); see docs/forms.md."""

    name: str
    description: str | None
    workflow_id: str | None
    form_schema: dict[str, Any] | None
    access_level: str
    organization_id: str | None
    is_active: bool


class OrganizationUpdate(TypedDict, total=False):
    """Fields of an organization to change."""

    name: str
    domain: str | None
    is_active: bool


class UserUpdate(TypedDict, total=False):
    """Fields of a user to change (``org_id`` and ``organization_id`` are the same field)."""

    email: str
    name: str
    is_active: bool
    is_superuser: bool
    org_id: str | None
    organization_id: str | None
    password: str


class RoleUpdate(TypedDict, total=False):
    """Fields of a role to change (``can_author``: holders may start notebook runs)."""

    name: str
    description: str | None
    is_active: bool
    can_author: bool


class ScheduleUpdate(TypedDict, total=False):
    """Fields of a schedule to change (``overlap_policy``: ``skip`` or ``queue``)."""

    cron: str
    timezone: str
    params: dict[str, Any]
    enabled: bool
    overlap_policy: str


class TableCreate(TypedDict, total=False):
    """A table to create: its name, a description and an optional schema."""

    name: str
    description: str | None
    table_schema: dict[str, Any] | None


class DocumentInsert(TypedDict, total=False):
    """A document to insert: its JSON object (``data``) and an optional id (default: generated)."""

    id: str | None
    data: dict[str, Any]


class DocumentWrite(TypedDict):
    """A document's JSON object: replaces it (PUT) or is merged into its top-level keys (PATCH)."""

    data: dict[str, Any]


class TableCountBody(TypedDict, total=False):
    """Count the documents matching ``where`` (all without it)."""

    where: dict[str, Any] | None


class TableQueryBody(TableCountBody, total=False):
    """Documents matching ``where``, ordered by a field (``order_dir``: ``asc`` or ``desc``), a page at a time."""

    order_by: str | None
    order_dir: str
    limit: int | None
    offset: int
