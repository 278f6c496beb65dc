"""The one place where service errors become HTTP statuses."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
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


def _body(status: int, detail: str, extra: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if extra:
        body["extra"] = extra
    return body


def domain_error_handler(_request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Map a service error to its status with ``{"status_code", "detail", "extra": {"errors": [...]}}``."""
    status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 400)
    extra = {"errors": exc.errors} if isinstance(exc, InvalidInputError) and exc.errors else None
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(_body(status, str(exc), extra), status_code=status, media_type=MediaType.JSON, headers=headers)


def http_error_handler(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Keep Litestar's own HTTP errors (404 route, 405, 400 body) in the same JSON shape."""
    return Response(
        _body(exc.status_code, exc.detail, exc.extra or None),
        status_code=exc.status_code,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


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
