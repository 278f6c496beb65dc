"""The schedules API (``/api/schedules``): admins manage cron schedules; members read their organization's."""

from __future__ import annotations

from typing import Annotated, Any, cast

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import Parameter
from litestar.types import ControllerRouterHandler
from pydantic import BaseModel, Field

from app.services.actor import Actor
from app.services.executions.schedules import ScheduleService, run_view
from app.services.executions.views import ScheduleRunView, ScheduleView
from app.web.api.schemas import Deleted, SchedulerStatus, ScheduleUpdate, documented_body
from app.web.deps import db, get_platform


class ScheduleCreate(BaseModel):
    """Body of ``POST /schedules``."""

    workflow: str = Field(description="Workflow name or id")
    cron: str = Field(description="Cron expression: 'minute hour day month weekday', or six fields with seconds first")
    timezone: str = Field(default="UTC", description="IANA time zone the expression is read in")
    params: dict[str, Any] = Field(default_factory=dict, description="Workflow parameters for every firing")
    organization_id: str | None = Field(default=None, description="Organization scope to run in (None: global)")
    # Checked by the service (true/false only, one of the policies), which names the field in a 422.
    enabled: Any = Field(default=True, description="Fire at all (true/false)")
    overlap_policy: Any = Field(
        default="skip", description="When the previous run is still going: 'skip' this firing, or 'queue' it"
    )


class ScheduleController(Controller):
    """Cron schedules: list, add (per organization, with parameters), edit, enable/disable, delete, firings."""

    path = "/schedules"
    tags = ["schedules"]

    @get("/")
    async def list_schedules(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        organization_id: str | None = Parameter(default=None, description="Only this organization's (admins)"),
    ) -> list[ScheduleView]:
        """Schedules with cron, time zone, next and last run and status (admins: all; members: their organization's)."""
        async with db(request) as session:
            service = ScheduleService(session)
            return await service.views(actor, await service.list(actor, organization_id))

    @get("/status")
    async def scheduler_status(self, request: Request[Any, Any, Any], actor: Actor) -> SchedulerStatus:
        """Whether this server process fires schedules (holds the scheduler lock), and how many jobs it has (admins)."""
        actor.require_admin("see the scheduler status")
        return cast("SchedulerStatus", get_platform(request.app.state).scheduler.status())

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], actor: Actor, data: ScheduleCreate) -> ScheduleView:
        """Add a schedule (admins); an invalid cron expression or time zone is refused with the reason (422)."""
        async with db(request) as session:
            service = ScheduleService(session)
            row = await service.create(actor, **data.model_dump())
            view = (await service.views(actor, [row]))[0]
        await get_platform(request.app.state).scheduler.reload()
        return view

    @get("/{schedule_id:str}")
    async def get_schedule(self, request: Request[Any, Any, Any], actor: Actor, schedule_id: str) -> ScheduleView:
        """One schedule."""
        async with db(request) as session:
            service = ScheduleService(session)
            return (await service.views(actor, [await service.get(actor, schedule_id)]))[0]

    @patch("/{schedule_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        schedule_id: str,
        data: Annotated[dict[str, Any], documented_body(ScheduleUpdate, closed=True)],
    ) -> ScheduleView:
        """Change ``cron``, ``timezone``, ``params``, ``enabled`` or ``overlap_policy`` (admins)."""
        async with db(request) as session:
            service = ScheduleService(session)
            row = await service.update(actor, schedule_id, **data)
            view = (await service.views(actor, [row]))[0]
        await get_platform(request.app.state).scheduler.reload()
        return view

    @delete("/{schedule_id:str}", status_code=200)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, schedule_id: str) -> Deleted:
        """Delete a schedule added by an admin (a schedule declared in code is disabled instead: 409)."""
        async with db(request) as session:
            await ScheduleService(session).delete(actor, schedule_id)
        await get_platform(request.app.state).scheduler.reload()
        return {"deleted": True}

    @get("/{schedule_id:str}/runs")
    async def runs(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        schedule_id: str,
        limit: int = Parameter(default=50, ge=1, le=500, description="How many, newest first"),
    ) -> list[ScheduleRunView]:
        """Firings of a schedule: submitted (with the execution and its status), skipped, queued, missed or failed."""
        async with db(request) as session:
            return [
                run_view(run, status) for run, status in await ScheduleService(session).runs(actor, schedule_id, limit)
            ]


CONTROLLERS: list[ControllerRouterHandler] = [ScheduleController]
