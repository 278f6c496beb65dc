"""HTTP transport of the SDK: every module talks to ``/api/sdk/v1`` through here.

Where the connection comes from, first match wins:

1. the connection bound with the running execution (worker processes get the
   server URL and a token scoped to that execution's user and organization);
2. :func:`configure` (CLI, notebooks, scripts);
3. environment variables ``BIFROST_URL`` and ``BIFROST_API_KEY``
   (``BIFROST_ORG`` selects an organization for platform admins).

Inside the server process an ``httpx.ASGITransport`` to the app can be set with
:func:`configure` so that SDK calls skip the network but still cross the same
HTTP boundary (authentication, org scoping).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import httpx

from bifrost._context import current_connection
from bifrost.errors import (
    ConfigurationError,
    IntegrationError,
    NotAvailableError,
    NotFoundError,
    PermissionDeniedError,
    UserError,
    ValidationError,
    WorkflowError,
)

SDK_PREFIX = "/api/sdk/v1"


@dataclass
class _Settings:
    base_url: str | None = None
    api_key: str | None = None
    org: str | None = None
    transport: httpx.AsyncBaseTransport | None = None


_settings = _Settings()
_clients: dict[tuple[str, int, int], httpx.AsyncClient] = {}


def configure(
    url: str | None = None,
    api_key: str | None = None,
    *,
    org: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Point SDK calls made outside an execution at a platform.

    Args:
        url: Base URL of the platform, e.g. ``http://127.0.0.1:8000``.
        api_key: An API key created in the platform (sent as a bearer token).
        org: Organization id or name to act in (platform admins only).
        transport: Optional httpx transport (e.g. ``ASGITransport(app)``).
    """
    _settings.base_url = url.rstrip("/") if url else None
    _settings.api_key = api_key
    _settings.org = org
    _settings.transport = transport
    _clients.clear()


def _resolve() -> tuple[str, str | None, str | None, httpx.AsyncBaseTransport | None]:
    bound = current_connection()
    if bound is not None:
        return bound.base_url, bound.token, None, None
    if _settings.base_url or _settings.transport:
        return _settings.base_url or "http://bifrost.internal", _settings.api_key, _settings.org, _settings.transport
    url = os.environ.get("BIFROST_URL")
    if url:
        return url.rstrip("/"), os.environ.get("BIFROST_API_KEY"), os.environ.get("BIFROST_ORG"), None
    raise ConfigurationError(
        "The bifrost SDK is not connected to a platform. Inside a workflow run by the platform this is "
        "automatic; elsewhere set BIFROST_URL and BIFROST_API_KEY, or call bifrost.configure(url, api_key)."
    )


def _client(base_url: str, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    # One client per event loop: httpx clients must not cross loops.
    loop_id = id(asyncio.get_running_loop())
    key = (base_url, loop_id, id(transport))
    client = _clients.get(key)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=httpx.Timeout(60.0, connect=10.0))
        _clients[key] = client
    return client


def _error_detail(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase, []
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("message") or body)
        extra = body.get("extra")
        errors = extra.get("errors", []) if isinstance(extra, dict) else extra if isinstance(extra, list) else []
        return detail, errors if isinstance(errors, list) else []
    return str(body), []


def raise_for_response(response: httpx.Response) -> None:
    """Turn an error response of the platform into the SDK's typed exception."""
    if response.is_success:
        return
    detail, errors = _error_detail(response)
    status = response.status_code
    if status in (401, 403):
        raise PermissionDeniedError(detail)
    if status == 404:
        raise NotFoundError(detail)
    if status in (400, 409, 413, 422):
        raise ValidationError(detail, errors)
    if status == 501:
        raise NotAvailableError(detail)
    kind = response.headers.get("x-bifrost-error")
    if kind == "integration":
        raise IntegrationError(detail)
    if kind == "configuration":
        raise ConfigurationError(detail)
    if kind == "user":
        raise UserError(detail)
    raise WorkflowError(f"platform error {status}: {detail}")


async def request(
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Send one SDK request and raise the typed error on failure.

    Args:
        method: HTTP method.
        path: Path below ``/api/sdk/v1`` (starting with ``/``).
        json: JSON body.
        params: Query parameters (None values are dropped).
        content: Raw body.
        headers: Extra headers.

    Returns:
        The successful response.
    """
    base_url, token, org, transport = _resolve()
    send_headers = dict(headers or {})
    if token:
        send_headers["Authorization"] = f"Bearer {token}"
    if org:
        send_headers["X-Bifrost-Org"] = org
    query = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = await _client(base_url, transport).request(
            method, SDK_PREFIX + path, json=json, params=query, content=content, headers=send_headers
        )
    except httpx.TransportError as exc:
        raise WorkflowError(f"cannot reach the platform at {base_url}: {exc}") from exc
    raise_for_response(response)
    return response


async def call(method: str, path: str, **kwargs: Any) -> Any:
    """Like :func:`request` but return the decoded JSON body (None for 204)."""
    response = await request(method, path, **kwargs)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


async def call_or_none(method: str, path: str, **kwargs: Any) -> Any:
    """Like :func:`call` but return None when the platform answers 404."""
    try:
        return await call(method, path, **kwargs)
    except NotFoundError:
        return None
