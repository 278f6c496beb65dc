"""Workflows: catalogue and the execute endpoint (``/api/workflows`` and ``/api/sdk/v1/workflows``)."""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.serialization import default_serializer
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import LazySession
from app.services.actor import Actor
from app.services.errors import ConflictError
from app.services.executions.service import ExecutionService, execution_view
from app.services.executions.views import ExecutionView
from app.services.workflows.catalogue import WorkflowService, workflow_detail
from app.services.workflows.policies import PolicyService
from app.services.workflows.views import PolicyBody, PolicyView, SyncCounts, WorkflowDetail
from app.web.api.schemas import ExecuteAccepted, WorkspaceErrorView, WorkspaceStatus, documented_body
from app.web.deps import db, get_platform
from bifrost.enums import ExecutionStatus

# Extra seconds a waiting request allows beyond the workflow's own timeout.
_WAIT_MARGIN_SECONDS = 5.0
# Litestar's own JSON encoding (msgspec, its default hook for other types), built once.
_JSON = msgspec.json.Encoder(enc_hook=default_serializer)


class ExecuteRequest(BaseModel):
    """Body of an execute call."""

    params: dict[str, Any] = Field(default_factory=dict, description="Workflow parameters by name")
    org: str | None = Field(default=None, description="Organization id or name to run in (platform admins only)")


async def run_and_respond(
    request: Request[Any, Any, Any], actor: Actor, workflow: str, body: ExecuteRequest, wait: bool, trigger: str
) -> Response[ExecuteAccepted | ExecutionView]:
    """Submit through the one submit path; wait for the result when asked."""
    status_code, content = await submit_and_wait(request, actor, workflow, body.params, body.org, wait, trigger)
    return Response(content, status_code=status_code)


async def submit_and_wait(
    request: Request[Any, Any, Any],
    actor: Actor,
    workflow: str,
    params: dict[str, Any],
    org: str | None,
    wait: bool,
    trigger: str,
) -> tuple[int, ExecuteAccepted | ExecutionView]:
    """Submit through the one submit path; wait for the result when asked.

    Returns:
        The status code (202 queued, running or awaiting approval; 200 finished) and the answer's content.

    Raises:
        ConflictError: A nested wait with no free worker to run it.
    """
    platform = get_platform(request.app.state)
    if wait and actor.execution_id and not platform.queue_mode and platform.pool.stats()["idle"] == 0:
        # The calling workflow holds a worker while it waits: with none free, both would wait forever.
        # (Queue mode: the run goes to any node's free slot; the wait ends at its timeout at worst.)
        raise ConflictError(
            "No free worker to run a nested workflow while this one waits for it: call "
            "workflows.execute(..., wait=False) and poll, or raise BIFROST_WORKERS."
        )
    # A plain session, not db(): submit commits everything it writes itself (alone, or in the dispatcher's
    # group commit when the session read nothing), so the empty closing commit of db() is saved. Made on
    # first use: with the workflow and the caller cached, a SQLite submit needs none.
    async with LazySession(platform.sessions) as session:
        execution = await ExecutionService(cast("AsyncSession", session), platform.dispatcher).submit(
            workflow, params, actor, org, trigger=trigger
        )
    accepted: ExecuteAccepted = {
        "execution_id": execution.id,
        "status": execution.status,
        "status_url": f"/api/executions/{execution.id}",
    }
    if execution.status == ExecutionStatus.AWAITING_APPROVAL.value:
        # A run waiting for an approver may wait for hours: never hold the request (or a worker) for it.
        # The whole execution is returned (with the status URL), so the SDK reads it as a WorkflowExecution.
        return 202, cast("ExecuteAccepted", {**execution_view(execution, actor), **accepted})
    if not wait:
        return 202, accepted
    if not await platform.dispatcher.wait(execution.id, execution.timeout_seconds + _WAIT_MARGIN_SECONDS):
        return 202, accepted  # still queued or running: the caller polls the status URL
    outcome = platform.dispatcher.outcome(execution.id)
    if outcome is not None:
        # The dispatcher kept what it stored: answer without reading the row back. The instance was
        # never in a session (submit builds it for its Core INSERT): plain values, no attribute events.
        execution.__dict__.update(outcome)
        return 200, execution_view(execution, actor)
    async with db(request) as session:
        done = await ExecutionService(session).get(actor, execution.id)
        return 200, execution_view(done, actor)


def json_response(status_code: int, content: Any) -> Response[bytes]:
    """``content`` encoded here, as Litestar would (same encoder and fallback hook): the same bytes and headers.

    A ``Response`` of bytes skips Litestar's per-response serialiser lookup and rendering on the hot path.
    """
    return Response(_JSON.encode(content), status_code=status_code, media_type=MediaType.JSON)


class WorkflowController(Controller):
    """List, describe and execute workflows."""

    path = "/workflows"
    tags = ["workflows"]

    @get("/")
    async def list_workflows(self, request: Request[Any, Any, Any], actor: Actor) -> list[WorkflowDetail]:
        """List active workflows visible to the caller."""
        async with db(request) as session:
            return [workflow_detail(w) for w in await WorkflowService(session).list(actor)]

    @get("/{name:str}")
    async def get_workflow(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> WorkflowDetail:
        """One workflow with its parameters."""
        async with db(request) as session:
            return workflow_detail(await WorkflowService(session).get(actor, name))

    @get("/{name:str}/access")
    async def get_access(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> PolicyView:
        """Who may run the workflow and whether its runs wait for approval (anyone who may run it)."""
        async with db(request) as session:
            return await PolicyService(session).get(actor, name)

    @put("/{name:str}/access")
    async def set_access(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        data: Annotated[Any, documented_body(PolicyBody, closed=True)],
    ) -> PolicyView:
        """Change the access policy and approval settings (platform admins); null fields follow the decorator."""
        async with db(request) as session:
            return await PolicyService(session).update(actor, name, data)

    @post(
        "/{name:str}/execute",
        status_code=202,
        responses={200: ResponseSpec(data_container=ExecutionView, description="The finished execution (wait=true)")},
    )
    async def execute(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        data: ExecuteRequest,
        wait: bool = Parameter(default=False, description="Wait for the result (200) instead of 202 + execution id"),
    ) -> Response[ExecuteAccepted | ExecutionView]:
        """Run a workflow: 202 with the execution id, or with ``?wait=true`` 200 with the finished execution."""
        trigger = "sdk" if request.url.path.startswith("/api/sdk/") else "api"
        status_code, content = await submit_and_wait(request, actor, name, data.params, data.org, wait, trigger)
        # Annotated with the shapes for /schema; the bytes are their JSON.
        return cast("Response[ExecuteAccepted | ExecutionView]", json_response(status_code, content))


class DataProviderController(Controller):
    """List data providers (forms run them)."""

    path = "/data-providers"
    tags = ["workflows"]

    @get("/")
    async def list_providers(self, request: Request[Any, Any, Any], actor: Actor) -> list[WorkflowDetail]:
        """List active data providers."""
        async with db(request) as session:
            return [workflow_detail(w) for w in await WorkflowService(session).list(actor, kind="data_provider")]


class WorkspaceController(Controller):
    """Workspace status for admins."""

    path = "/workspace"
    tags = ["workspace"]

    @get("/errors")
    async def errors(self, request: Request[Any, Any, Any], actor: Actor) -> list[WorkspaceErrorView]:
        """Files that failed to import, with tracebacks (admins only)."""
        async with db(request) as session:
            rows = await WorkflowService(session).errors(actor)
            return [{"file": e.file, "error": e.error, "traceback": e.traceback} for e in rows]

    @get("/status")
    async def status(self, request: Request[Any, Any, Any], actor: Actor) -> WorkspaceStatus:
        """Worker pool counts and the last sync (admins only)."""
        actor.require_admin("see the workspace status")
        platform = get_platform(request.app.state)
        return {"workers": platform.pool.stats(), "last_sync": platform.last_sync}

    @post("/sync", status_code=200)
    async def sync(self, request: Request[Any, Any, Any], actor: Actor) -> SyncCounts:
        """Re-scan the workspace now (admins only)."""
        actor.require_admin("sync the workspace")
        platform = get_platform(request.app.state)
        platform.pool.reload()
        # cast: the engine passes on the counts WorkflowService.sync builds (SyncCounts' keys).
        return cast("SyncCounts", await platform.sync_workspace())
