"""The schedules page (platform admins): every schedule, enable/disable, edit the cron expression."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import BaseModel

from app.services.actor import Actor
from app.services.errors import AuthenticationError, DomainError, InvalidInputError
from app.services.schedules import ScheduleService
from app.web.deps import db, get_platform, resolve_actor


class CronForm(BaseModel):
    """Fields of the edit-cron form."""

    cron: str = ""
    timezone: str = "UTC"


class EnabledForm(BaseModel):
    """Fields of the enable/disable form."""

    enabled: str = ""


async def _admin(request: Request[Any, Any, Any]) -> Actor | Redirect:
    try:
        actor = await resolve_actor(request)
    except AuthenticationError:
        return Redirect(f"/login?next={quote('/schedules')}", status_code=303)
    return actor


async def _page(
    request: Request[Any, Any, Any], actor: Actor, errors: dict[str, str] | None = None, status_code: int = 200
) -> Template:
    schedules: list[dict[str, Any]] = []
    if actor.is_superuser:
        async with db(request) as session:
            service = ScheduleService(session)
            schedules = await service.views(actor, await service.list(actor))
    context = {
        "actor": actor,
        "schedules": schedules,
        "errors": errors or {},
        "forbidden": not actor.is_superuser,
        "scheduler": get_platform(request.app.state).scheduler.status(),
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


SCHEDULE_PAGE_HANDLERS = [schedules_page, edit_cron, set_enabled]
