"""Login, logout and the home page (what the user can run, and their recent executions)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import BaseModel

from app.services.auth import AuthService
from app.services.errors import AuthenticationError
from app.services.executions import ExecutionService, execution_view
from app.services.workflows import WorkflowService, workflow_detail
from app.web.deps import db, resolve_actor


class LoginForm(BaseModel):
    """Fields of the login form."""

    email: str = ""
    password: str = ""
    next: str = "/"


def _safe_next(target: str) -> str:
    # Only local paths: never redirect to another site after login.
    return target if target.startswith("/") and not target.startswith("//") else "/"


@get("/login", include_in_schema=False)
async def login_form(request: Request[Any, Any, Any], next: str = "/") -> Template:
    """The login page."""
    return Template("pages/login.html", context={"next": _safe_next(next), "error": None, "email": ""})


@post("/login", include_in_schema=False, status_code=200)
async def login_submit(
    request: Request[Any, Any, Any],
    data: LoginForm = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Template | Redirect:
    """Check credentials; on success set the session and go to ``next``."""
    try:
        async with db(request) as session:
            user = await AuthService(session).login(data.email, data.password)
    except AuthenticationError as exc:
        context = {"next": _safe_next(data.next), "error": str(exc), "email": data.email}
        # 200, not 401: the page itself loaded fine and shows the problem next to the form
        # (a 4xx document also logs a console error in browsers).
        return Template("pages/login.html", context=context, status_code=200)
    request.set_session({"user_id": user.id})
    return Redirect(_safe_next(data.next), status_code=303)


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    """End the session."""
    request.clear_session()
    return Redirect("/login", status_code=303)


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Workflows the user can run and their recent executions."""
    try:
        actor = await resolve_actor(request)
    except AuthenticationError:
        return Redirect(f"/login?next={quote(request.url.path)}", status_code=303)
    async with db(request) as session:
        workflows = [workflow_detail(w) for w in await WorkflowService(session).list(actor)]
        executions = [execution_view(e, actor) for e in await ExecutionService(session).list(actor, limit=20)]
        errors = await WorkflowService(session).errors(actor) if actor.is_superuser else []
    return Template(
        "pages/home.html",
        context={"actor": actor, "workflows": workflows, "executions": executions, "workspace_errors": errors},
    )
