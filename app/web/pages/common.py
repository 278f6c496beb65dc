"""What every HTML page shares: the layout's context, errors shown as pages, small helpers.

Page controllers subclass :class:`PageController`, so a service error becomes an HTML page
with the right status (403, 404, ...) instead of the JSON API's body, and a request without a
session is sent to the login page.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.actor import Actor
from app.services.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from app.services.executions.approvals import ApprovalService
from app.services.identity.organizations import OrganizationService
from app.web.errors import html_error

log = logging.getLogger(__name__)

_STATUS = {PermissionDeniedError: 403, NotFoundError: 404, ConflictError: 409, InvalidInputError: 422}


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """True for requests htmx makes (they get fragments, not whole pages)."""
    return request.headers.get("hx-request") == "true"


def render_string(request: Request[Any, Any, Any], template: str, **context: Any) -> str:
    """Render a template to text (server-sent events carry HTML fragments)."""
    engine = request.app.template_engine
    assert engine is not None
    return str(engine.get_template(template).render(request=request, **context))


async def layout_context(request: Request[Any, Any, Any], session: AsyncSession, actor: Actor) -> dict[str, Any]:
    """What ``base.html`` needs: the actor, a pending notice, whether they approve runs and, for platform admins,
    the organizations."""
    context: dict[str, Any] = {"actor": actor, "notice": pop_flash(request)}
    context["approver"] = await ApprovalService(session).is_approver(actor)
    if actor.is_superuser:
        context["orgs"] = await OrganizationService(session).list(actor)
    return context


def login_redirect(request: Request[Any, Any, Any]) -> Response[Any]:
    """Send a visitor without a valid session to the login page, then back here."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/login?next={quote(target, safe='/')}"
    if is_htmx(request):
        # htmx follows HX-Redirect with a full page load (a 303 would be swapped into the page).
        return Response(b"", status_code=200, headers={"HX-Redirect": location})
    return Redirect(location, status_code=303)


def error_page(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    """An HTML page (or fragment, for htmx) explaining what went wrong."""
    if is_htmx(request):
        return Response(
            f'<p class="alert" role="alert">{_escape(message)}</p>', status_code=status, media_type=MediaType.HTML
        )
    return html_error(request, status, message)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def page_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Turn service and HTTP errors raised by a page into an HTML answer."""
    if isinstance(exc, AuthenticationError):
        return login_redirect(request)
    if isinstance(exc, DomainError):
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        return error_page(request, status, str(exc))
    if isinstance(exc, HTTPException):
        return error_page(request, exc.status_code, str(exc.detail))
    log.exception("unhandled error on page %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(request, 500, "The page could not be shown; the error has been logged.")


PAGE_EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: page_error_handler,
    HTTPException: page_error_handler,
    Exception: page_error_handler,
}


class PageController(Controller):
    """Base of HTML page controllers: no OpenAPI entries, errors rendered as pages."""

    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS


def form_text(form: Any, name: str, default: str = "") -> str:
    """One text value of a submitted form (``default`` when absent)."""
    value = form.get(name)
    return value if isinstance(value, str) else default


def safe_next(target: str, default: str = "/") -> str:
    """Only local paths: never redirect to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else default


def flash(request: Request[Any, Any, Any], message: str) -> None:
    """Remember a one-time notice for the next page this browser loads (post/redirect/get)."""
    request.session["flash"] = message


def pop_flash(request: Request[Any, Any, Any]) -> str | None:
    """The pending notice, removed from the session."""
    value = request.session.pop("flash", None) if "session" in request.scope else None
    return value if isinstance(value, str) else None
