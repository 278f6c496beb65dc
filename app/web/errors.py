"""The one place where service errors become HTTP statuses.

API clients get JSON (``{"status_code", "detail", "extra"}``); a browser asking for a page
(``Accept: text/html``, not an ``/api/`` path, not htmx) gets the one HTML error page,
``templates/pages/error.html``, that the page controllers use too, so an unknown URL, a 405 or a
crash looks the same as a 403 from a page.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import IntegrityError

from app.services.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidInputError: 422,
}


ERROR_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
}
# What a person reading the page should do, per status (the detail says what happened).
_HINTS = {
    403: "Your account does not have access to this. Ask a platform administrator if you need it.",
    404: "The address may be mistyped, or the item was deleted. Use the menu above or go back to the home page.",
    405: "This address does not answer that kind of request; open it from the menu instead.",
    429: "Wait a minute, then try again.",
    500: "The error has been logged; try again, and tell your administrator if it persists.",
}


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """True for a browser navigating to a page: it accepts HTML, is not htmx and is not the JSON API."""
    path = request.url.path
    if path.startswith("/api/") or path == "/api" or request.headers.get("hx-request") == "true":
        return False
    return "text/html" in request.headers.get("accept", "")


def html_error(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    """The HTML error page: a title for the status, what happened, what to do, a way home.

    Args:
        request: The request that failed (the page's status and path come from it).
        status: The HTTP status to answer.
        message: What went wrong, in words for the person reading the page.

    Returns:
        The rendered ``pages/error.html`` with ``status``.
    """
    context = {
        "status": status,
        "title": ERROR_TITLES.get(status, "Error"),
        "message": message,
        "hint": _HINTS.get(status, ""),
    }
    return Template("pages/error.html", context=context, status_code=status)


def _body(status: int, detail: str, extra: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if extra:
        body["extra"] = extra
    return body


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Map a service error to its status with ``{"status_code", "detail", "extra": {"errors": [...]}}``."""
    status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)
    if status != 401 and wants_html(request):
        return html_error(request, status, str(exc))
    extra = {"errors": exc.errors} if isinstance(exc, InvalidInputError) and exc.errors else None
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(_body(status, str(exc), extra), status_code=status, media_type=MediaType.JSON, headers=headers)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Keep Litestar's own HTTP errors (404 route, 405, 400 body) in the same JSON shape (HTML for a browser)."""
    if exc.status_code != 401 and wants_html(request):
        response = html_error(request, exc.status_code, _human_detail(exc))
        response.headers.update(exc.headers or {})
        return response
    return Response(
        _body(exc.status_code, exc.detail, exc.extra or None),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


def _human_detail(exc: HTTPException) -> str:
    """Litestar's wording for a missing route or method is terse ("Not Found"); say it for a person."""
    if exc.status_code == 404 and exc.detail in ("Not Found", ""):
        return "There is no page at this address."
    if exc.status_code == 405:
        return "This address does not accept that request method."
    return str(exc.detail)


def integrity_error_handler(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[Any]:
    """Safety net: a constraint the services did not pre-check is a 409, not a 500 (and is logged)."""
    log.warning("constraint violation on %s %s: %s", request.method, request.url.path, exc.orig)
    return Response(
        _body(409, "The request conflicts with existing data (a duplicate or a missing reference)."),
        status_code=409,
        media_type=MediaType.JSON,
    )


def nesting_error_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """400 for input nested too deeply to decode or validate (``[[[[...]]]]`` 10,000 levels deep).

    The JSON decoder and validators recurse per level; Python stops them with RecursionError. Only
    input can nest that deep in a request, so this is the client's error, named as such.
    """
    log.warning("input nested too deeply on %s %s", request.method, request.url.path)
    return Response(
        _body(400, "The request is nested too deeply (objects or arrays inside each other); send a flatter body."),
        status_code=400,
        media_type=MediaType.JSON,
    )


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected error with its traceback and answer a generic 500 (no internals leak)."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if wants_html(request):
        return html_error(request, HTTP_500_INTERNAL_SERVER_ERROR, "The page could not be shown.")
    return Response(
        _body(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error_handler,
    HTTPException: http_error_handler,
    IntegrityError: integrity_error_handler,
    RecursionError: nesting_error_handler,
    Exception: unexpected_error_handler,
}
