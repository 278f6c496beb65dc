"""HTTP endpoints: ``/api/endpoints/<workflow name>`` runs a workflow declared with ``endpoint_enabled=True``.

* Methods: the workflow's ``allowed_methods`` (others get 405 with ``Allow``). GET and DELETE take
  parameters from the query string; POST, PUT and PATCH from a JSON object body, a form body
  (urlencoded or multipart text fields) or the query string (the body wins when both name one).
* Authentication: an API key (``X-Bifrost-Key`` or ``Authorization: Bearer``); the run acts as the
  key's user in the key's organization, and a key limited to another workflow gets 403. A workflow
  with ``public_endpoint=True`` needs none: it runs as the built-in "Public endpoint" account in the
  workflow's scope, rate limited per client address (429 with ``Retry-After``).
* ``execution_mode``: ``sync`` answers with the result as JSON; ``async`` answers 202 with the
  execution id and a status URL; auto (not set in the decorator) is sync unless the caller sends
  ``Prefer: respond-async``.
* Bodies over ``endpoint_max_body_bytes`` get 413, malformed JSON 400, other media types 415, and
  invalid parameters 422 naming each field.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from litestar import Request, Response, route
from litestar.datastructures import UploadFile
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.types import ControllerRouterHandler

from app.models import Workflow
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, whole_number
from app.services.identity.system_users import PUBLIC_ENDPOINT, service_actor
from app.services.workflows.catalogue import WorkflowService
from app.web import rate_limits
from app.web.api.workflows import ExecuteRequest, run_and_respond
from app.web.deps import db, get_platform, resolve_actor

METHODS: list[HttpMethod] = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Platform-written failures (flagged user_error so their messages show) and the status each answers.
_PLATFORM_FAILURES = {
    "TimeoutError": 504,
    "Cancelled": 409,
    "WorkerLost": 500,
    "ServerRestarted": 500,
    "DispatcherError": 500,
}


# ----- rate limit of public endpoints ------------------------------------------------------------------
class RateLimiter:
    """Calls per client address in fixed one-minute windows (per server process; shared: app/web/rate_limits.py).

    Args:
        per_minute: Calls allowed per address per window.
    """

    _MAX_TRACKED = 10_000

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[float, int]] = {}

    def retry_after(self, address: str, now: float | None = None) -> float | None:
        """Count one call; None when allowed, else the seconds until the address may call again."""
        now = time.monotonic() if now is None else now
        start, count = self._windows.get(address, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= self.per_minute:
            return 60.0 - (now - start)
        if len(self._windows) >= self._MAX_TRACKED:
            # Forget finished windows so that many addresses cannot grow this without bound.
            self._windows = {a: w for a, w in self._windows.items() if now - w[0] < 60.0}
        self._windows[address] = (start, count + 1)
        return None


async def _check_rate(request: Request[Any, Any, Any]) -> None:
    address = request.client.host if request.client else "unknown"
    per_minute = get_platform(request.app.state).settings.public_endpoint_rate_limit_per_minute
    wait = await rate_limits.retry_after(request.app.state, "public_endpoint", per_minute, address)  # every server
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status_code=429,
            detail=f"Too many calls to public endpoints from your address; try again in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )


# ----- parameters -------------------------------------------------------------------------------------
def _types(schema: Any) -> set[str]:
    """JSON types a property schema accepts (``$ref`` counts as an object)."""
    if not isinstance(schema, dict):
        return set()
    if "$ref" in schema:
        return {"object"}
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for option in schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf") or []:
        found |= _types(option)
    return found


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # left as text: validation names the field if it is not acceptable


def params_from_pairs(pairs: list[tuple[str, Any]], workflow: Workflow) -> dict[str, Any]:
    """Turn query-string or form fields into parameters, using the workflow's schema to shape them.

    Text is converted by validation (``"3"`` for an int, ``"true"`` for a bool). A list parameter takes
    repeated fields (``?tag=a&tag=b``) or one JSON array; an object parameter takes a JSON object.

    Raises:
        InvalidInputError: A single-valued parameter given more than once, or a file upload.
    """
    properties = workflow.params_schema.get("properties", {})
    grouped: dict[str, list[Any]] = {}
    for key, value in pairs:
        if isinstance(value, UploadFile):
            raise InvalidInputError.field(key, "file uploads are not accepted by endpoints; send text fields")
        grouped.setdefault(key, []).append(value)
    params: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for key, values in grouped.items():
        kinds = _types(properties.get(key))
        if "array" in kinds:
            single = values[0]
            is_json_list = len(values) == 1 and isinstance(single, str) and single.lstrip().startswith("[")
            params[key] = _maybe_json(single) if is_json_list else list(values)
        elif len(values) > 1:
            errors.append({"field": key, "message": f"given {len(values)} times; this parameter takes one value"})
        elif "object" in kinds:
            params[key] = _maybe_json(values[0])
        else:
            params[key] = values[0]
    if errors:
        raise InvalidInputError(
            "Invalid parameters: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors
        )
    return params


async def _read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    declared = request.headers.get("content-length")
    declared_size = whole_number(declared)
    if declared_size is not None and declared_size > limit:
        raise HTTPException(status_code=413, detail=f"The request body is over the {limit}-byte limit of endpoints.")
    body = await request.body()
    if len(body) > limit:  # a chunked body announces no length
        raise HTTPException(status_code=413, detail=f"The request body is over the {limit}-byte limit of endpoints.")
    return body


async def _body_params(request: Request[Any, Any, Any], workflow: Workflow, limit: int) -> dict[str, Any]:
    body = await _read_body(request, limit)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return params_from_pairs(list(form.multi_items()), workflow)
    if not body.strip():
        return {}
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status_code=415,
            detail=f"Unsupported body type {media_type!r}: send application/json or a form "
            "(application/x-www-form-urlencoded, multipart/form-data).",
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(status_code=400, detail=f"The body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError.field("body", "must be a JSON object of parameter values")
    return data


async def request_params(request: Request[Any, Any, Any], workflow: Workflow, limit: int) -> dict[str, Any]:
    """The parameters of an endpoint call: query string, plus the body for POST/PUT/PATCH."""
    params = params_from_pairs(list(request.query_params.multi_items()), workflow)
    if request.method in _BODY_METHODS:
        params.update(await _body_params(request, workflow, limit))
    return params


# ----- responses -----------------------------------------------------------------------------------------
def wants_async(workflow: Workflow, prefer: str | None) -> bool:
    """Async when the decorator says so; sync when it says so; auto: sync unless ``Prefer: respond-async``."""
    if workflow.execution_mode_explicit:
        return workflow.execution_mode == "async"
    return any(part.split("=")[0].strip().lower() == "respond-async" for part in (prefer or "").split(","))


def _failure_status(view: dict[str, Any]) -> int:
    # What the workflow refused on purpose (UserError, its own parameter checks, SDK permission errors)
    # is the caller's to fix: 422. A timeout is a gateway timeout, a cancelled run a conflict, and a
    # crash (an unexpected exception, a lost worker) a failure on the server side: 500.
    error_type = view.get("error_type") or ""
    if error_type in _PLATFORM_FAILURES:
        return _PLATFORM_FAILURES[error_type]
    return 422 if view.get("user_error") else 500


def _finished(view: dict[str, Any]) -> Response[Any]:
    headers = {"X-Bifrost-Execution-Id": view["execution_id"]}
    if view["status"] == "Completed":
        return Response(
            json.dumps(view["result"]).encode(), status_code=200, media_type="application/json", headers=headers
        )
    status = _failure_status(view)
    body = {
        "status_code": status,
        "detail": view.get("error_message") or f"The workflow ended {view['status']}.",
        "execution_id": view["execution_id"],
        "status": view["status"],
        "error_type": view.get("error_type"),
        "status_url": f"/api/executions/{view['execution_id']}",
    }
    return Response(body, status_code=status, headers=headers)


async def _caller(request: Request[Any, Any, Any], workflow: Workflow | None, name: str) -> tuple[Actor, Workflow]:
    """Who runs the call, and the workflow (401 without credentials, 404 when not an endpoint for them)."""
    if workflow is not None and workflow.endpoint_enabled and workflow.public_endpoint:
        await _check_rate(request)
        async with db(request) as session:
            return await service_actor(session, PUBLIC_ENDPOINT, workflow.organization_id), workflow
    # Credentials first: without them, nothing tells whether a (non-public) endpoint exists.
    actor = await resolve_actor(request)
    if workflow is None or not workflow.endpoint_enabled or not actor.can_see_org(workflow.organization_id):
        raise NotFoundError(f"No endpoint {name!r}.")
    return actor, workflow


@route("/endpoints/{name:str}", http_method=METHODS, include_in_schema=False)
async def call_endpoint(request: Request[Any, Any, Any], name: str) -> Response[Any]:
    """Run the workflow ``name`` from an HTTP call (its OpenAPI entry is generated per workflow)."""
    async with db(request) as session:
        try:
            found: Workflow | None = await WorkflowService(session).get(None, name)
        except NotFoundError:
            found = None
    actor, workflow = await _caller(request, found, name)
    allowed = [m.upper() for m in workflow.allowed_methods]
    if request.method not in allowed:
        raise HTTPException(
            status_code=405,
            detail=f"Endpoint {workflow.name!r} accepts {', '.join(allowed)}, not {request.method}.",
            headers={"Allow": ", ".join(allowed)},
        )
    settings = get_platform(request.app.state).settings
    params = await request_params(request, workflow, settings.endpoint_max_body_bytes)
    run_async = wants_async(workflow, request.headers.get("prefer"))
    response = await run_and_respond(
        request, actor, workflow.name, ExecuteRequest(params=params), wait=not run_async, trigger="endpoint"
    )
    # Either shape: 202 carries ExecuteAccepted's keys, 200 the finished ExecutionView's.
    view: Any = response.content
    if response.status_code == 202:  # asked for, or a sync wait that ran out: poll the status URL
        response.headers["Location"] = view["status_url"]
        response.headers["X-Bifrost-Execution-Id"] = view["execution_id"]
        if run_async and not workflow.execution_mode_explicit:
            response.headers["Preference-Applied"] = "respond-async"
        return response
    return _finished(view)


CONTROLLERS: list[ControllerRouterHandler] = [call_endpoint]
