"""The API reference at ``/schema``: Redoc from a vendored, pinned file, and a document that shows
anonymous callers nothing of the workspace but its public endpoints.

* ``/schema`` is an HTML page that loads ``static/vendor/redoc/redoc-<version>.standalone.js`` with a
  Subresource Integrity hash and no inline script (Redoc reads ``spec-url`` from its element), so it
  works offline and under the pages' Content-Security-Policy.
* ``/schema/openapi.json`` is the static API plus one path per endpoint-enabled workflow
  (:mod:`app.web.api.endpoint_openapi`). Callers without a session or an API key get the public
  endpoints only: which workflows an install runs, and their parameters, are not for strangers.
  Signed-in users get the endpoints of the workflows they may run (access policies); platform admins all.
"""

from __future__ import annotations

import copy
from typing import Any

from litestar import Request, Router
from litestar.enums import MediaType
from litestar.middleware import ASGIMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.types import ASGIApp, Receive, Scope, Send

from app.services.errors import AuthenticationError, PermissionDeniedError
from app.services.workflows.catalogue import WorkflowService
from app.web.deps import db, resolve_actor

REDOC_JS = "/static/vendor/redoc/redoc-2.5.2.standalone.js"
# sha384 of the vendored file (tests/platform/test_attack_web.py checks it matches the file).
REDOC_INTEGRITY = "sha384-70P5pmIdaQdVbxvjhrcTDv1uKcKqalZ3OHi7S2J+uzDl0PW8dO6L+pHOpm9EEjGJ"
_CALLER_KEY = "bifrost_schema_authenticated"
_ENDPOINTS_PREFIX = "/api/endpoints/"


class RedocPage(OpenAPIRenderPlugin):
    """The Redoc page, with no CDN and no inline script."""

    def __init__(self) -> None:
        super().__init__(path="/", media_type=MediaType.HTML)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The HTML page; Redoc fetches the document from ``spec-url`` itself."""
        title = str(openapi_schema.get("info", {}).get("title", "API"))
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title><link rel='icon' href='/static/favicon.svg'></head><body>"
            "<redoc spec-url='/schema/openapi.json' hide-download-button='false'></redoc>"
            f"<script src='{REDOC_JS}' integrity='{REDOC_INTEGRITY}' crossorigin='anonymous'></script>"
            "</body></html>"
        ).encode()


def _public_only(document: dict[str, Any], runnable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The document without the endpoint paths (and their component schemas) the caller may not call.

    Args:
        document: The whole document.
        runnable: Workflows the caller may run (their endpoints stay); public endpoints always stay.
    """
    hidden: list[str] = []
    paths = {}
    for path, operations in document.get("paths", {}).items():
        name = path[len(_ENDPOINTS_PREFIX) :]
        if (
            path.startswith(_ENDPOINTS_PREFIX)
            and any(op.get("security") for op in operations.values())
            and name not in runnable
        ):
            hidden.append(name)
            continue
        paths[path] = operations
    if not hidden:
        return document
    trimmed = {**document, "paths": paths}
    components = copy.copy(document.get("components", {}))
    schemas = components.get("schemas", {})
    # Component names of an endpoint start with Endpoint_<workflow>_ (endpoint_openapi._component_name).
    prefixes = tuple(f"Endpoint_{name}_" for name in hidden)
    components["schemas"] = {name: value for name, value in schemas.items() if not name.startswith(prefixes)}
    trimmed["components"] = components
    return trimmed


class CallerJson(JsonRenderPlugin):
    """``/schema/openapi.json``: the whole document for a signed-in caller, public parts for anyone else."""

    def __init__(self) -> None:
        super().__init__()
        self._public: tuple[int, bytes] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Render for the caller resolved by :class:`SchemaCallerMiddleware`."""
        caller = request.scope.get(_CALLER_KEY)
        if caller is True:  # a platform admin: everything
            return self.render_json(request, openapi_schema)
        if isinstance(caller, frozenset):  # a user: the endpoints of the workflows they may run
            return self.render_json(request, _public_only(openapi_schema, caller))
        # The document object changes only when the workspace's endpoints do: cache by identity.
        if self._public is None or self._public[0] != id(openapi_schema):
            self._public = (id(openapi_schema), self.render_json(request, _public_only(openapi_schema)))
        return self._public[1]


class SchemaCallerMiddleware(ASGIMiddleware):
    """Marks ``/schema`` requests made with a valid session or API key (render hooks are synchronous)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Resolve the caller once; an unknown or missing credential is simply anonymous."""
        try:
            request: Request[Any, Any, Any] = Request(scope, receive)
            actor = await resolve_actor(request)
            if actor.is_superuser:
                scope[_CALLER_KEY] = True  # type: ignore[literal-required]
            else:
                # What a user may not run is not listed to them (access policies, docs/access.md).
                async with db(request) as session:
                    runnable = frozenset(w.name for w in await WorkflowService(session).list(actor))
                scope[_CALLER_KEY] = runnable  # type: ignore[literal-required]
        except (AuthenticationError, PermissionDeniedError):
            scope[_CALLER_KEY] = False  # type: ignore[literal-required]
        await next_app(scope, receive, send)


def openapi_config() -> OpenAPIConfig:
    """The app's OpenAPI configuration: the pages above under ``/schema``."""
    return OpenAPIConfig(
        title="Bifrost Workbench API",
        version="0.1.0",
        path="/schema",
        render_plugins=[RedocPage(), CallerJson()],
        openapi_router=Router(
            path="/schema", route_handlers=[], include_in_schema=False, middleware=[SchemaCallerMiddleware()]
        ),
    )
