"""Login, logout, the home page (what the user can run, their recent executions) and the org switcher."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import BaseModel

from app.db import read_transaction
from app.services.actor import Actor
from app.services.errors import AuthenticationError
from app.services.executions.service import ExecutionService, execution_view
from app.services.forms.service import FormService
from app.services.identity.auth import SecondFactorRequired
from app.services.identity.organizations import OrganizationService
from app.services.workflows.catalogue import WorkflowService, workflow_detail
from app.web.deps import db, end_session, get_platform
from app.web.pages.common import PageController, flash, form_text, layout_context, safe_next
from app.web.pages.sign_in import login_page
from app.web.sign_in_flow import password_sign_in


class LoginForm(BaseModel):
    """Fields of the login form."""

    email: str = ""
    password: str = ""
    next: str = "/"


@get("/login", include_in_schema=False)
async def login_form(request: Request[Any, Any, Any], next: str = "/") -> Template:
    """The login page (password form and single sign-on buttons)."""
    return await login_page(request, next_url=next)


@post("/login", include_in_schema=False, status_code=200)
async def login_submit(
    request: Request[Any, Any, Any],
    data: LoginForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Check credentials; on success set the session and go to ``next`` (or to the second step first)."""
    try:
        outcome = await password_sign_in(request, data.email, data.password, data.next)
    except AuthenticationError as exc:
        # 200, not 401: the page itself loaded fine and shows the problem next to the form
        # (a 4xx document also logs a console error in browsers).
        return await login_page(request, next_url=data.next, error=str(exc), email=data.email)
    if isinstance(outcome, SecondFactorRequired):
        return Redirect("/login/totp" if outcome.step == "totp" else "/login/totp/enrol", status_code=303)
    return Redirect(safe_next(data.next), status_code=303)


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    """End the session, and every other session of the user."""
    await end_session(request)
    return Redirect("/login", status_code=303)


class HomePages(PageController):
    """The home page and the organization switcher of platform admins."""

    path = "/"

    @get("/")
    async def home(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Workflows the user can run, by category, and their recent executions."""
        # Data provider runs (forms filling their selects) are history, not what the user ran. Read
        # on its own (read) connection: the history may be long, and runs must not wait for it.
        async with read_transaction(get_platform(request.app.state).sessions) as session:
            recent = await ExecutionService(session).list(actor, limit=10, kind="workflow")
        executions = [execution_view(e, actor) for e in recent]
        async with db(request) as session:
            workflows = [workflow_detail(w) for w in await WorkflowService(session).list(actor)]
            errors = await WorkflowService(session).errors(actor) if actor.is_superuser else []
            forms = [f for f in await FormService(session).list(actor) if f.is_active]
            layout = await layout_context(request, session, actor)
        categories: dict[str, list[Any]] = {}
        for workflow in workflows:
            categories.setdefault(workflow["category"], []).append(workflow)
        return Template(
            "pages/home.html",
            context={
                **layout,
                "categories": sorted(categories.items()),
                "workflows": workflows,
                "executions": executions,
                "workspace_errors": errors,
                "forms": forms,
            },
        )

    @post("/session/org", status_code=303)
    async def switch_org(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Platform admins: act in one organization (or globally) from now on in this browser."""
        actor.require_admin("switch organizations")
        form = await request.form()
        org_id = form_text(form, "org_id")
        if org_id:
            async with db(request) as session:
                org = await OrganizationService(session).get(actor, org_id)
            request.session["org_id"] = org.id
            flash(request, f"Now acting in {org.name}.")
        else:
            request.session.pop("org_id", None)
            flash(request, "Now acting in all organizations (global).")
        return Redirect(safe_next(form_text(form, "next", "/")), status_code=303)
