"""Notebook runs: executions whose code runs in a Jupyter kernel (``/api/notebook-runs``, JSON API only).

See :mod:`app.services.executions.external_runs` for the design. The kernel authenticates with the user's API key
(or session); the per-execution SDK token it gets back works only on the SDK API, like a worker's.
"""

from __future__ import annotations

import math
from typing import Any, cast

from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from pydantic import BaseModel, Field

from app.engine.external_runs import tracker_for
from app.services.actor import Actor
from app.services.executions.external_runs import ExternalRunService
from app.services.executions.log_limits import LogLimits
from app.services.executions.service import execution_view
from app.services.executions.views import ExecutionContextView, ExecutionView
from app.web import rate_limits
from app.web.api.schemas import NotebookLogsStored, NotebookRunStarted
from app.web.deps import db, get_platform, resolve_actor


class NotebookRunStart(BaseModel):
    """Body of ``POST /notebook-runs``."""

    name: str = Field(description="Name of the workflow (or data provider) defined in the notebook")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameter values")
    params_schema: dict[str, Any] = Field(description="JSON schema of the parameters, as bifrost infers it")
    kind: str = Field(default="workflow", description="workflow or data_provider")
    org: str | None = Field(default=None, description="Organization id or name to run in (platform admins only)")
    timeout_seconds: int = Field(default=1800, description="The platform ends the run as failed after this")


class NotebookRunLogs(BaseModel):
    """Body of ``POST /notebook-runs/{id}/logs``."""

    lines: list[Any] = Field(description='[{"level", "message", "logger"?, "timestamp"?}] in order')


class NotebookRunFinish(BaseModel):
    """Body of ``POST /notebook-runs/{id}/finish``."""

    status: str = Field(description="Completed, Failed or Cancelled")
    result: Any = None
    error_message: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    user_error: bool = False


async def limit_log_posts(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: at most ``notebook_log_rate_limit_per_minute`` log posts per user, checked before the body is read.

    Without it one user could post lines as fast as the server stores them (a 221 MB log took 5 s).
    """
    request = cast("Request[Any, Any, Any]", connection)
    actor = await resolve_actor(request)
    state = connection.app.state
    per_minute = get_platform(state).settings.notebook_log_rate_limit_per_minute
    wait = await rate_limits.retry_after(state, "notebook_log", per_minute, actor.user_id)  # every server
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status_code=429,
            detail=f"Too many notebook log posts from your user; try again in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


class NotebookRunController(Controller):
    """Start a notebook run, append its logs, record its end."""

    path = "/notebook-runs"
    tags = ["notebooks"]

    @get("/context")
    async def context(self, request: Request[Any, Any, Any], actor: Actor) -> ExecutionContextView:
        """The caller's user and organization as ``bifrost.context`` fields (a connected kernel shows them)."""
        async with db(request) as session:
            return await ExternalRunService(session).session_context(actor)

    @post("/", status_code=201)
    async def start(self, request: Request[Any, Any, Any], actor: Actor, data: NotebookRunStart) -> NotebookRunStarted:
        """Write a RUNNING execution for code run in the caller's kernel; returns its SDK token and context."""
        platform = get_platform(request.app.state)
        async with db(request) as session:
            execution, token, context = await ExternalRunService(session).start(
                actor,
                data.name,
                data.params,
                data.params_schema,
                org=data.org,
                kind=data.kind,
                timeout_seconds=data.timeout_seconds,
            )
            view = execution_view(execution, actor)
        tracker_for(platform).started(execution.id, execution.timeout_seconds)
        return {**view, "sdk_token": token, "context": context}

    @post("/{execution_id:str}/logs", status_code=200, guards=[limit_log_posts])
    async def logs(
        self, request: Request[Any, Any, Any], actor: Actor, execution_id: str, data: NotebookRunLogs
    ) -> NotebookLogsStored:
        """Store log lines of a running notebook run (streamed live to ``/api/executions/{id}/stream``).

        Rate limited per user (``BIFROST_NOTEBOOK_LOG_RATE_LIMIT_PER_MINUTE``, 429 with ``Retry-After``);
        lines past the run's log cap are dropped and counted by marker lines.
        """
        settings = get_platform(request.app.state).settings
        limits = LogLimits(settings.log_max_lines, settings.log_max_bytes)
        async with db(request) as session:
            rows = await ExternalRunService(session).add_logs(actor, execution_id, data.lines, limits)
        tracker_for(get_platform(request.app.state)).logged(rows)
        return {"stored": len(rows), "last_seq": rows[-1]["seq"] if rows else None}

    @post("/{execution_id:str}/finish", status_code=200)
    async def finish(
        self, request: Request[Any, Any, Any], actor: Actor, execution_id: str, data: NotebookRunFinish
    ) -> ExecutionView:
        """Record how the run ended; its SDK token stops working."""
        async with db(request) as session:
            execution = await ExternalRunService(session).finish(
                actor,
                execution_id,
                status=data.status,
                result=data.result,
                error_message=data.error_message,
                error_type=data.error_type,
                traceback=data.traceback,
                user_error=data.user_error,
            )
            view = execution_view(execution, actor)
        tracker_for(get_platform(request.app.state)).finished(execution)
        return view


CONTROLLERS = [NotebookRunController]
