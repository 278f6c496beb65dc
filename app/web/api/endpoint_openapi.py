"""The workflows' HTTP endpoints in the OpenAPI document (``/schema``), with their parameter schemas.

Endpoints come and go with the workspace, so they cannot be declared as static routes. The app's
OpenAPI plugin is given a subclass whose document is the static one plus one path per
endpoint-enabled workflow of the last workspace scan, rebuilt when a scan replaces the list.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import quote

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin  # the plugin class is not exported publicly

from app.web.deps import get_platform

_QUERY_METHODS = frozenset({"GET", "DELETE"})
_SECURITY_SCHEMES = {
    "BifrostBearer": {"type": "http", "scheme": "bearer", "description": "An API key (bfk_...)"},
    "BifrostKey": {"type": "apiKey", "in": "header", "name": "X-Bifrost-Key", "description": "An API key (bfk_...)"},
}
_ACCEPTED = {
    "description": "Accepted: running in the background (async mode, Prefer: respond-async, or a sync wait that ran out)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "execution_id": {"type": "string"},
                    "status": {"type": "string"},
                    "status_url": {"type": "string"},
                },
            }
        }
    },
}
_ERRORS = {
    "400": "Malformed JSON body",
    "401": "No or invalid API key (not for public endpoints)",
    "403": "The API key may not run this workflow",
    "404": "No such endpoint for this caller",
    "405": "Method not allowed (see the Allow header)",
    "409": "The run was cancelled",
    "413": "Request body too large",
    "415": "Unsupported body media type",
    "422": "Invalid parameters (each bad field is named), or the workflow raised a UserError",
    "429": "Rate limit of public endpoints reached (see Retry-After)",
    "500": "The workflow failed unexpectedly (body has the execution id)",
    "504": "The workflow timed out (body has the execution id)",
}


def _component_name(workflow: str, definition: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"Endpoint_{workflow}_{definition}")


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    """Point ``#/$defs/X`` references at the components the definitions were moved to."""
    if isinstance(node, dict):
        out = {key: _rewrite_refs(value, names) for key, value in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = f"#/components/schemas/{names.get(ref[8:], ref[8:])}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def endpoint_paths(definitions: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI path items and component schemas for the endpoint-enabled workflows among ``definitions``.

    Args:
        definitions: ``WorkflowDefinition.to_metadata()`` dicts (the last workspace scan).

    Returns:
        ``(paths, schemas)`` to merge into the document.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for definition in definitions:
        if not definition.get("endpoint_enabled"):
            continue
        name = definition["name"]
        raw = definition.get("params_schema") or {"type": "object", "properties": {}}
        names = {key: _component_name(name, key) for key in raw.get("$defs", {})}
        for key, schema in raw.get("$defs", {}).items():
            schemas[names[key]] = _rewrite_refs(schema, names)
        body = _rewrite_refs({k: v for k, v in raw.items() if k != "$defs"}, names)
        required = set(body.get("required", []))
        description = definition.get("description") or ""
        item: dict[str, Any] = {}
        for method in definition.get("allowed_methods") or ["POST"]:
            operation: dict[str, Any] = {
                "tags": ["endpoints"],
                "summary": f"Run {name}" + (" (public)" if definition.get("public_endpoint") else ""),
                "description": description,
                "operationId": f"Endpoint{method.capitalize()}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
                "responses": {
                    "200": {"description": "The workflow's result (sync mode)", "content": {"application/json": {}}},
                    "202": _ACCEPTED,
                    **{code: {"description": text} for code, text in _ERRORS.items()},
                },
                "security": [] if definition.get("public_endpoint") else [{"BifrostBearer": []}, {"BifrostKey": []}],
            }
            if not definition.get("execution_mode_explicit"):
                operation["parameters"] = [
                    {
                        "name": "Prefer",
                        "in": "header",
                        "required": False,
                        "description": "respond-async: answer 202 at once instead of waiting for the result",
                        "schema": {"type": "string"},
                    }
                ]
            if method.upper() in _QUERY_METHODS:
                operation.setdefault("parameters", []).extend(
                    {
                        "name": prop,
                        "in": "query",
                        "required": prop in required,
                        "description": schema.get("description", "") if isinstance(schema, dict) else "",
                        "schema": schema,
                    }
                    for prop, schema in body.get("properties", {}).items()
                )
            else:
                operation["requestBody"] = {
                    "required": bool(required),
                    "content": {
                        "application/json": {"schema": body},
                        "application/x-www-form-urlencoded": {"schema": body},
                    },
                }
            item[method.lower()] = operation
        paths[f"/api/endpoints/{quote(name, safe='')}"] = item
    return paths, schemas


class _WithEndpoints(OpenAPIPlugin):
    """The app's OpenAPI plugin, serving the static document plus the current endpoints."""

    __slots__ = ()

    def provide_openapi_schema(self) -> dict[str, Any]:
        definitions = get_platform(self.app.state).workflow_definitions
        cached = self.app.state.get("endpoint_openapi")
        if cached is not None and cached[0] is definitions:
            return cached[1]  # type: ignore[no-any-return]
        document = copy.deepcopy(super().provide_openapi_schema())
        paths, schemas = endpoint_paths(definitions)
        document.setdefault("paths", {}).update(paths)
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(schemas)
        if paths:
            components.setdefault("securitySchemes", {}).update(_SECURITY_SCHEMES)
        self.app.state["endpoint_openapi"] = (definitions, document)
        return document


def install_openapi(app: Litestar) -> None:
    """Make the app's OpenAPI document list the workflows' endpoints (call once, after creating the app)."""
    plugin = app.plugins.get(OpenAPIPlugin)
    # Same memory layout (the subclass adds no slots), so the running plugin can take the subclass.
    plugin.__class__ = _WithEndpoints
