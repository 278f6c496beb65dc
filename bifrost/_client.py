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
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
# Set by use_transport() (bifrost.testing): wins over everything else while active.
_override: _Settings | None = None
# One client per event loop (httpx clients must not cross loops), keyed weakly by
# the loop itself: keying by id(loop) could hand a client bound to a dead loop to
# a new loop that happens to reuse the address.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


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


@contextlib.contextmanager
def use_transport(
    transport: httpx.AsyncBaseTransport,
    *,
    base_url: str = "http://bifrost.test",
    api_key: str | None = None,
    org: str | None = None,
) -> Iterator[None]:
    """Route every SDK call made inside the block to ``transport``.

    Takes precedence over a bound execution connection, :func:`configure` and
    the environment; the previous routing is restored on exit. Process-wide
    (not per task), meant for tests such as :func:`bifrost.testing.fake_config`.

    Args:
        transport: Typically an ``httpx.MockTransport`` answering ``/api/sdk/v1/...``.
        base_url: Base URL put in front of the request paths.
        api_key: Bearer token to send, if any.
        org: ``X-Bifrost-Org`` header to send, if any.
    """
    global _override
    previous = _override
    _override = _Settings(base_url=base_url.rstrip("/"), api_key=api_key, org=org, transport=transport)
    try:
        yield
    finally:
        _override = previous
        for per_loop in _clients.values():  # drop the clients that wrap this transport
            for key in [k for k in per_loop if k[1] == id(transport)]:
                del per_loop[key]


def _resolve() -> tuple[str, str | None, str | None, httpx.AsyncBaseTransport | None]:
    if _override is not None:
        return _override.base_url or "http://bifrost.test", _override.api_key, _override.org, _override.transport
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
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    # id(transport) is safe here: the transport is kept alive by whoever set it
    # (_settings / _override) and configure() drops every cached client.
    key = (base_url, id(transport))
    client = per_loop.get(key)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=httpx.Timeout(60.0, connect=10.0))
        per_loop[key] = client
    return client


def segment(value: str) -> str:
    """Percent-encode ``value`` as one URL path segment (``/`` included)."""
    return quote(str(value), safe="")


def _error_detail(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase, []
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("message") or body)
        extra = body.get("extra")
        errors: Any = body.get("errors")
        if errors is None:
            errors = extra.get("errors", []) if isinstance(extra, dict) else extra if isinstance(extra, list) else []
        return detail, [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
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
    client, request = _build(method, path, json=json, params=params, content=content, headers=headers)
    try:
        response = await client.send(request)
    except httpx.TransportError as exc:
        raise WorkflowError(f"cannot reach the platform at {client.base_url}: {exc}") from exc
    raise_for_response(response)
    return response


def _build(
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.AsyncClient, httpx.Request]:
    base_url, token, org, transport = _resolve()
    send_headers = dict(headers or {})
    if token:
        send_headers["Authorization"] = f"Bearer {token}"
    if org:
        send_headers["X-Bifrost-Org"] = org
    query = {k: v for k, v in (params or {}).items() if v is not None}
    client = _client(base_url, transport)
    request = client.build_request(
        method, SDK_PREFIX + path, json=json, params=query, content=content, headers=send_headers
    )
    return client, request


async def stream_lines(method: str, path: str, **kwargs: Any) -> AsyncIterator[str]:
    """Send one SDK request and yield the response body line by line as it arrives.

    Errors are raised like :func:`request` (before the first line).
    """
    client, request = _build(method, path, **kwargs)
    try:
        response = await client.send(request, stream=True)
    except httpx.TransportError as exc:
        raise WorkflowError(f"cannot reach the platform at {client.base_url}: {exc}") from exc
    try:
        if not response.is_success:
            await response.aread()
            raise_for_response(response)
        try:
            async for line in response.aiter_lines():
                yield line
        except httpx.TransportError as exc:
            raise WorkflowError(f"the platform closed the stream: {exc}") from exc
    finally:
        await response.aclose()


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
