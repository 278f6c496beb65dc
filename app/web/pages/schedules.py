"""The schedules page (platform admins): every schedule with who it runs as and its latest firings (each
with its execution's status and a link), enable/disable, edit the cron expression, run now, add a schedule
in one organization with its own parameters, delete one an admin added."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import BaseModel

from app.services.actor import Actor
from app.services.errors import AuthenticationError, DomainError, InvalidInputError, NotFoundError
from app.services.executions.schedules import OVERLAP_POLICIES, ScheduleService
from app.services.executions.views import ScheduleRunView, ScheduleView
from app.services.identity.organizations import OrganizationService
from app.services.workflows.catalogue import WorkflowService
from app.web.deps import db, get_platform, resolve_actor
from app.web.pages.common import error_page, layout_context
from app.web.pages.json_input import read_json


class CronForm(BaseModel):
    """Fields of the edit-cron form."""

    cron: str = ""
    timezone: str = "UTC"


class EnabledForm(BaseModel):
    """Fields of the enable/disable form."""

    enabled: str = ""


class NewScheduleForm(BaseModel):
    """Fields of the add-a-schedule form (``params``: a JSON object, empty for none)."""

    workflow: str = ""
    organization_id: str = ""
    cron: str = ""
    timezone: str = "UTC"
    params: str = ""
    overlap_policy: str = "skip"


# The add form's errors are keyed by this instead of a schedule id; errors about no row by PAGE.
NEW = "new"
PAGE = "page"


async def _admin(request: Request[Any, Any, Any]) -> Actor | Redirect:
    try:
        actor = await resolve_actor(request)
    except AuthenticationError:
        return Redirect(f"/login?next={quote('/schedules')}", status_code=303)
    return actor


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    new: NewScheduleForm | None = None,
) -> Template | Response[Any]:
    if not actor.is_superuser:
        # The one error page every other page shows for a 403 (issue 19), not a page of its own.
        return error_page(request, 403, "Only platform admins may manage schedules.")
    schedules: list[ScheduleView] = []
    firings: dict[str, list[ScheduleRunView]] = {}
    workflows: list[Any] = []
    organizations: list[Any] = []
    async with db(request) as session:
        # The layout's context (organization switch, approvals link) like every other page.
        layout = await layout_context(request, session, actor)
        if actor.is_superuser:
            service = ScheduleService(session)
            schedules = await service.views(actor, await service.list(actor))
            firings = await service.recent_runs(actor, [s["id"] for s in schedules])
            workflows = await WorkflowService(session).list(actor)
            organizations = await OrganizationService(session).list(actor)
    context = {
        **layout,
        "schedules": schedules,
        "firings": firings,
        "errors": errors or {},
        "scheduler": get_platform(request.app.state).scheduler.status(),
        "workflows": workflows,
        "organizations": organizations,
        "overlap_policies": OVERLAP_POLICIES,
        "new": new or NewScheduleForm(),
    }
    return Template("pages/schedules.html", context=context, status_code=status_code)


@get("/schedules", include_in_schema=False)
async def schedules_page(request: Request[Any, Any, Any]) -> Template | Response[Any] | Redirect:
    """Every schedule with its cron expression, time zone, next and last run and status."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    return await _page(request, actor, status_code=200 if actor.is_superuser else 403)


async def _apply(
    request: Request[Any, Any, Any],
    error_key: str,
    work: Callable[[ScheduleService, Actor], Awaitable[Any]],
    new: NewScheduleForm | None = None,
) -> Template | Response[Any] | Redirect:
    """Run one admin change, then back to the page; a refusal is shown under ``error_key`` with its reason."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    if not actor.is_superuser:
        return await _page(request, actor, status_code=403)
    try:
        async with db(request) as session:
            await work(ScheduleService(session), actor)
    except NotFoundError as exc:
        # No row to show it next to: above the list, with the status a missing schedule deserves.
        return await _page(request, actor, errors={PAGE: str(exc)}, status_code=404, new=new)
    except DomainError as exc:
        # Shown next to the schedule's row (or above the add form), with the reason: the page itself is a 200.
        return await _page(request, actor, errors={error_key: _reason(exc)}, new=new)
    await get_platform(request.app.state).scheduler.reload()
    return Redirect("/schedules", status_code=303)


def _reason(exc: DomainError) -> str:
    if isinstance(exc, InvalidInputError) and exc.errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return str(exc)


async def _change(
    request: Request[Any, Any, Any], schedule_id: str, **changes: Any
) -> Template | Response[Any] | Redirect:
    return await _apply(request, schedule_id, lambda service, actor: service.update(actor, schedule_id, **changes))


@post("/schedules/{schedule_id:str}/cron", include_in_schema=False, status_code=200)
async def edit_cron(
    request: Request[Any, Any, Any],
    schedule_id: str,
    data: CronForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Response[Any] | Redirect:
    """Change a schedule's cron expression and time zone; an invalid one is refused with the reason."""
    return await _change(request, schedule_id, cron=data.cron, timezone=data.timezone)


@post("/schedules/{schedule_id:str}/enabled", include_in_schema=False, status_code=200)
async def set_enabled(
    request: Request[Any, Any, Any],
    schedule_id: str,
    data: EnabledForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Response[Any] | Redirect:
    """Enable (``enabled=true``) or disable a schedule."""
    return await _change(request, schedule_id, enabled=data.enabled == "true")


@post("/schedules/new", include_in_schema=False, status_code=200)
async def add_schedule(
    request: Request[Any, Any, Any],
    data: NewScheduleForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Response[Any] | Redirect:
    """Add a schedule: a workflow in one organization (or global) with its own parameters."""
    params: Any = None
    error: InvalidInputError | None = None
    params, problem = read_json(data.params, "object", '{"name": "value"}') if data.params.strip() else ({}, None)
    if problem:
        error = InvalidInputError.field("params", problem)

    async def add(service: ScheduleService, actor: Actor) -> None:
        if error is not None:
            raise error  # shown like the service's own refusals, with the form kept
        await service.create(
            actor,
            data.workflow,
            data.cron,
            timezone=data.timezone or "UTC",
            params=params,
            organization_id=data.organization_id or None,
            overlap_policy=data.overlap_policy,
        )

    return await _apply(request, NEW, add, new=data)


@post("/schedules/{schedule_id:str}/run", include_in_schema=False, status_code=200)
async def run_now(request: Request[Any, Any, Any], schedule_id: str) -> Template | Response[Any] | Redirect:
    """Fire a schedule at once, as its firings run (same account, scope and parameters); listed among its firings."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    if not actor.is_superuser:
        return await _page(request, actor, status_code=403)
    try:
        # Its own transactions: inside one of the page's, SQLite's single connection would wait on itself.
        await get_platform(request.app.state).scheduler.run_now(actor, schedule_id)
    except NotFoundError as exc:
        return await _page(request, actor, errors={PAGE: str(exc)}, status_code=404)
    return Redirect("/schedules", status_code=303)


@post("/schedules/{schedule_id:str}/delete", include_in_schema=False, status_code=200)
async def delete_schedule(request: Request[Any, Any, Any], schedule_id: str) -> Template | Response[Any] | Redirect:
    """Delete a schedule an admin added (one declared in code is disabled instead: it would come back)."""
    return await _apply(request, schedule_id, lambda service, actor: service.delete(actor, schedule_id))


SCHEDULE_PAGE_HANDLERS = [schedules_page, add_schedule, edit_cron, set_enabled, run_now, delete_schedule]
