"""SDK modules whose server side is not in this release answer 501 with a clear message.

The SDK turns 501 into ``bifrost.errors.NotAvailableError`` so a workflow
fails with a message naming the module, instead of a confusing 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.handlers import HTTPRouteHandler

from app.services.actor import Actor

PENDING_MODULES: tuple[str, ...] = ()  # every SDK module is served now; kept for the next one


def _handler_for(module: str) -> HTTPRouteHandler:
    @route(
        [f"/{module}", f"/{module}/{{rest:path}}"],
        http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
        name=f"sdk-unavailable-{module}",
    )
    async def unavailable(request: Request[Any, Any, Any], actor: Actor) -> Response[dict[str, Any]]:
        return Response(
            {"status_code": 501, "detail": f"The {module} SDK module is not available on this server version yet."},
            status_code=501,
        )

    return unavailable


UNAVAILABLE_HANDLERS = [_handler_for(m) for m in PENDING_MODULES]
