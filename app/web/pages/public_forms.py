"""Public forms without login: ``/public/forms/{id}`` (only active forms with ``public`` access).

A visitor fills the form like a logged-in user would (same fields, conditional fields, data
providers, uploads and validation, see ``forms.py``); CSRF is enforced as on every page (the
token travels in the cookie set by the form page). The run happens as the built-in **Public
form** service account (created on first use, like the scheduler's, see
``app/services/identity/system_users.py``) in the form's organization, or the global scope for a global
form; an admin deactivates that account to switch every public form off.

Every request to these pages (but the result polls of a browser's own runs) counts against a per-client-address budget
(``public_form_rate_limit_per_minute``); above it the answer is a 429 page with ``Retry-After``.
After submitting, the visitor sees the run's status and result; which runs a browser may see is
remembered in its (signed) session cookie, so an execution id alone shows nothing.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.errors import NotFoundError
from app.services.executions.service import ExecutionService
from app.services.forms.service import FormService
from app.services.identity.system_users import ServiceAccount, service_actor
from app.web import rate_limits
from app.web.deps import db, get_platform
from app.web.pages.common import PAGE_EXCEPTION_HANDLERS, PageController, page_error_handler, render_string
from app.web.pages.executions import detail_context
from app.web.pages.form_fields import initial_values
from app.web.pages.forms import (
    LoadedCustomForm,
    body_too_large,
    load_custom_form,
    page_context,
    render_fields,
    submit_form,
)
from app.web.pages.providers import resolve_fields

PUBLIC_FORM = ServiceAccount(
    id=str(uuid.uuid5(uuid.UUID("5d0c8a57-6a8e-4f0b-9a43-2f7b1e9c4d10"), "public-form")),
    email="public-form@bifrost.invalid",
    name="Public form",
    switched_off="Public forms are switched off: the 'Public form' service account is deactivated.",
)
_SESSION_KEY = "public_runs"
_MAX_REMEMBERED = 20  # runs a browser can look at again (the session cookie stays small)


async def _check_rate(request: Request[Any, Any, Any]) -> None:
    """Count one request of this client address (on every server); 429 with ``Retry-After`` above the budget."""
    state = request.app.state
    address = request.client.host if request.client else "unknown"
    per_minute = get_platform(state).settings.public_form_rate_limit_per_minute
    wait = await rate_limits.retry_after(state, "public_form", per_minute, address)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status_code=429,
            detail=f"Too many requests to public forms from your address; please try again in {seconds} seconds.",
            headers={"Retry-After": str(seconds)},
        )


async def _load(
    request: Request[Any, Any, Any], form_id: str, *, counted: bool = True
) -> tuple[Actor, LoadedCustomForm]:
    if counted:
        await _check_rate(request)
    async with db(request) as session:
        form = await FormService(session).get_public(form_id)
        actor = await service_actor(session, PUBLIC_FORM, form.organization_id)
        loaded = await load_custom_form(session, actor, form, layout={"public": True})
    return actor, loaded


def _page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors as pages, keeping an HTTP error's headers (``Retry-After`` of the 429)."""
    response = page_error_handler(request, exc)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


class PublicFormPages(PageController):
    """``/public/forms``: anonymous form pages (rate limited, CSRF enforced)."""

    path = "/public/forms"
    exception_handlers = {**PAGE_EXCEPTION_HANDLERS, HTTPException: _page_error}

    @get("/{form_id:str}")
    async def page(self, request: Request[Any, Any, Any], form_id: str) -> Template:
        """The public form, filled with its defaults."""
        actor, loaded = await _load(request, form_id)
        values = initial_values(loaded.fields)
        states = await resolve_fields(request, actor, loaded.fields, values, loaded.providers, run=False)
        context = page_context(loaded, values, states, base_url=f"/public/forms/{form_id}")
        return Template("pages/forms/form.html", context=context)

    @get("/{form_id:str}/fields", media_type=MediaType.HTML)
    async def fields(
        self, request: Request[Any, Any, Any], form_id: str, field: str | None = None, changed: str | None = None
    ) -> str:
        """htmx: re-render provider fields and conditional fields."""
        actor, loaded = await _load(request, form_id)
        return await render_fields(request, actor, loaded, f"/public/forms/{form_id}", field, changed)

    @post("/{form_id:str}/run", status_code=200, request_max_body_size=None)
    async def run(self, request: Request[Any, Any, Any], form_id: str) -> Template | Redirect:
        """Submit: run the workflow as the Public form account and show the run's page."""
        actor, loaded = await _load(request, form_id)
        base_url = f"/public/forms/{form_id}"
        too_large = body_too_large(request)
        if too_large:
            context = page_context(loaded, initial_values(loaded.fields), {}, base_url=base_url, general=[too_large])
            return Template("pages/forms/form.html", context=context, status_code=413)
        execution_id, context = await submit_form(request, actor, loaded, base_url)
        if execution_id is None:
            return Template("pages/forms/form.html", context=context)
        runs = [r for r in request.session.get(_SESSION_KEY, []) if isinstance(r, str)]
        request.session[_SESSION_KEY] = [*runs, execution_id][-_MAX_REMEMBERED:]
        return Redirect(f"{base_url}/runs/{execution_id}", status_code=303)

    async def _run_context(self, request: Request[Any, Any, Any], form_id: str, execution_id: str) -> dict[str, Any]:
        # Not counted: only a browser that submitted the run gets here, and it polls until the run ends.
        actor, loaded = await _load(request, form_id, counted=False)
        if execution_id not in (request.session.get(_SESSION_KEY) or []):
            raise NotFoundError(f"Execution {execution_id!r} not found.")
        async with db(request) as session:
            execution = await ExecutionService(session).get(actor, execution_id)
        return {
            **detail_context(execution, actor, None),
            "form": loaded.form,
            "public": True,
            "status_url": f"/public/forms/{form_id}/runs/{execution_id}/status",
        }

    @get("/{form_id:str}/runs/{execution_id:str}")
    async def run_page(self, request: Request[Any, Any, Any], form_id: str, execution_id: str) -> Template:
        """The status and result of a run this browser submitted."""
        context = await self._run_context(request, form_id, execution_id)
        return Template("pages/forms/public_run.html", context=context)

    @get("/{form_id:str}/runs/{execution_id:str}/status", media_type=MediaType.HTML)
    async def run_status(self, request: Request[Any, Any, Any], form_id: str, execution_id: str) -> str:
        """htmx: the status and result block (polled until the run ends)."""
        context = await self._run_context(request, form_id, execution_id)
        return render_string(request, "pages/forms/_public_run_status.html", **context)


PUBLIC_FORM_PAGE_HANDLERS: list[ControllerRouterHandler] = [PublicFormPages]
