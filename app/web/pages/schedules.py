"""The schedules page (platform admins): every schedule, enable/disable, edit the cron expression,
add a schedule in one organization with its own parameters, delete one an admin added."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import BaseModel

from app.services.actor import Actor
from app.services.errors import AuthenticationError, DomainError, InvalidInputError
from app.services.organizations import OrganizationService
from app.services.schedules import OVERLAP_POLICIES, ScheduleService
from app.services.workflows import WorkflowService
from app.web.deps import db, get_platform, resolve_actor


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


# The add form's errors are keyed by this instead of a schedule id.
NEW = "new"


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
) -> Template:
    schedules: list[dict[str, Any]] = []
    workflows: list[Any] = []
    organizations: list[Any] = []
    if actor.is_superuser:
        async with db(request) as session:
            service = ScheduleService(session)
            schedules = await service.views(actor, await service.list(actor))
            workflows = await WorkflowService(session).list(actor)
            organizations = await OrganizationService(session).list(actor)
    context = {
        "actor": actor,
        "schedules": schedules,
        "errors": errors or {},
        "forbidden": not actor.is_superuser,
        "scheduler": get_platform(request.app.state).scheduler.status(),
        "workflows": workflows,
        "organizations": organizations,
        "overlap_policies": OVERLAP_POLICIES,
        "new": new or NewScheduleForm(),
    }
    return Template("pages/schedules.html", context=context, status_code=status_code)


@get("/schedules", include_in_schema=False)
async def schedules_page(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Every schedule with its cron expression, time zone, next and last run and status."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    return await _page(request, actor, status_code=200 if actor.is_superuser else 403)


async def _change(request: Request[Any, Any, Any], schedule_id: str, **changes: Any) -> Template | Redirect:
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    if not actor.is_superuser:
        return await _page(request, actor, status_code=403)
    try:
        async with db(request) as session:
            await ScheduleService(session).update(actor, schedule_id, **changes)
    except InvalidInputError as exc:
        # Shown next to the schedule's row, with the reason (the page itself loaded fine: 200).
        reason = "; ".join(e["message"] for e in exc.errors) or str(exc)
        return await _page(request, actor, errors={schedule_id: reason})
    except DomainError as exc:
        return await _page(request, actor, errors={schedule_id: str(exc)})
    await get_platform(request.app.state).scheduler.reload()
    return Redirect("/schedules", status_code=303)


@post("/schedules/{schedule_id:str}/cron", include_in_schema=False, status_code=200)
async def edit_cron(
    request: Request[Any, Any, Any],
    schedule_id: str,
    data: CronForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Change a schedule's cron expression and time zone; an invalid one is refused with the reason."""
    return await _change(request, schedule_id, cron=data.cron, timezone=data.timezone)


@post("/schedules/{schedule_id:str}/enabled", include_in_schema=False, status_code=200)
async def set_enabled(
    request: Request[Any, Any, Any],
    schedule_id: str,
    data: EnabledForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Enable (``enabled=true``) or disable a schedule."""
    return await _change(request, schedule_id, enabled=data.enabled == "true")


def _reason(exc: DomainError) -> str:
    if isinstance(exc, InvalidInputError) and exc.errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return str(exc)


@post("/schedules/new", include_in_schema=False, status_code=200)
async def add_schedule(
    request: Request[Any, Any, Any],
    data: NewScheduleForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Add a schedule: a workflow in one organization (or global) with its own parameters."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    if not actor.is_superuser:
        return await _page(request, actor, status_code=403)
    try:
        params = json.loads(data.params) if data.params.strip() else {}
    except ValueError as exc:
        return await _page(request, actor, errors={NEW: f"params: not valid JSON ({exc})"}, new=data)
    if not isinstance(params, dict):
        return await _page(request, actor, errors={NEW: "params: must be a JSON object"}, new=data)
    try:
        async with db(request) as session:
            await ScheduleService(session).create(
                actor,
                data.workflow,
                data.cron,
                timezone=data.timezone or "UTC",
                params=params,
                organization_id=data.organization_id or None,
                overlap_policy=data.overlap_policy,
            )
    except DomainError as exc:
        # The form comes back filled in, with the reason (the page itself loaded fine: 200).
        return await _page(request, actor, errors={NEW: _reason(exc)}, new=data)
    await get_platform(request.app.state).scheduler.reload()
    return Redirect("/schedules", status_code=303)


@post("/schedules/{schedule_id:str}/delete", include_in_schema=False, status_code=200)
async def delete_schedule(request: Request[Any, Any, Any], schedule_id: str) -> Template | Redirect:
    """Delete a schedule an admin added (one declared in code is disabled instead: it would come back)."""
    actor = await _admin(request)
    if isinstance(actor, Redirect):
        return actor
    if not actor.is_superuser:
        return await _page(request, actor, status_code=403)
    try:
        async with db(request) as session:
            await ScheduleService(session).delete(actor, schedule_id)
    except DomainError as exc:
        return await _page(request, actor, errors={schedule_id: _reason(exc)})
    await get_platform(request.app.state).scheduler.reload()
    return Redirect("/schedules", status_code=303)


SCHEDULE_PAGE_HANDLERS = [schedules_page, add_schedule, edit_cron, set_enabled, delete_schedule]
