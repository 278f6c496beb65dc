"""``/mcp``: the platform's MCP server over streamable HTTP, authenticated by API key.

The official ``mcp`` SDK's :class:`StreamableHTTPSessionManager` (an ASGI app) is mounted with a
Litestar ``asgi`` route handler. Before the SDK sees a request, :func:`mcp_app` resolves
``Authorization: Bearer <API key>`` to the caller's :class:`Actor` (``X-Bifrost-Org`` picks a platform
admin's organization, as on the API) on **every** request, so a revoked key or a deactivated user is
refused at once, mid-session too. The session the SDK opens is bound to the key and organization that
opened it: another key presenting its id gets 404. No cookie is accepted here, so the route needs no
CSRF token; the app's guards still apply (body limit before anything reads the body, cross-site
``Origin`` refused for requests without a key).

The endpoint, and with it the SDK (~0.7 s of imports), starts on the first ``/mcp`` request, not with
the server: most installations never receive one, and every ``bifrost serve`` and ``bifrost run``
would pay for it at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, asgi
from litestar.types import Receive, Scope, Send

from app.db import transaction
from app.engine.platform import Platform
from app.services.actor import Actor
from app.services.errors import AuthenticationError, DomainError
from app.services.identity.auth import AuthService
from app.services.identity.security import API_KEY_PREFIX
from app.settings import Settings

MCP_PATH = "/mcp"
_STATE_KEY = "mcp"

# The SDK announces "session manager started" at INFO on every start: noise in `bifrost serve` output.
logging.getLogger("mcp.server.streamable_http_manager").setLevel(logging.WARNING)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


AUTH_ERROR_CODE = -32001  # JSON-RPC's server-defined range: not authenticated / not allowed


async def _refuse(send: Send, status: int, detail: str) -> None:
    # A JSON-RPC error body: MCP clients show its message (the SDK's client does) instead of a bare status.
    error = {"code": AUTH_ERROR_CODE, "message": detail}
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="bifrost", error="invalid_token"'))
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)


async def _authenticate(platform: Platform, scope: Scope, send: Send) -> Actor | None:
    """The caller's actor from its API key, or None once the refusal is sent.

    Runs before the endpoint starts: a caller without a valid key never makes this server load the SDK.
    """
    header = _header(scope, b"authorization") or ""
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        await _refuse(send, 401, "Authentication required: send an API key as 'Authorization: Bearer <key>'.")
        return None
    if not token.startswith(API_KEY_PREFIX):
        await _refuse(send, 401, "The MCP endpoint accepts only API keys (bfk_...).")
        return None
    requested_org = _header(scope, b"x-bifrost-org") or None
    try:
        async with transaction(platform.sessions) as session:
            return await AuthService(session).actor_for_token(token, requested_org)
    except AuthenticationError as exc:
        await _refuse(send, 401, str(exc))
    except DomainError as exc:  # e.g. a key limited to another organization than X-Bifrost-Org names
        await _refuse(send, 403, str(exc))
    return None


class McpEndpoint:
    """The SDK's session manager around :class:`PlatformMcp`, with API-key authentication."""

    def __init__(self, platform: Platform, settings: Settings) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        from app.services.mcp.server import PlatformMcp
        from bifrost import __version__

        # Links in answers: the configured public URL, else the address this server really listens on.
        public_url = settings.public_url or platform.sdk_url
        self.mcp = PlatformMcp(platform.sessions, platform.dispatcher, public_url, __version__)
        self.manager = StreamableHTTPSessionManager(
            self.mcp.server,
            # Host and Origin are checked by the app (docs/security.md), and every request needs an API key:
            # the SDK's DNS-rebinding allow-list (loopback names only) would refuse a real deployment's host.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=settings.max_body_bytes,
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send, actor: Actor) -> None:
        """Hand an authenticated request to the SDK's session manager, bound to ``actor``."""
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        from app.services.mcp.server import ACTOR_SCOPE_KEY

        scope[ACTOR_SCOPE_KEY] = actor  # type: ignore[literal-required]
        # The SDK binds each session to the principal that opened it (another key gets 404 for its id).
        principal = AccessToken(
            token="", client_id=f"{actor.api_key_id}:{actor.acting_org_id or ''}", scopes=[], subject=actor.user_id
        )
        scope["user"] = AuthenticatedUser(principal)
        await self.manager.handle_request(scope, receive, send)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group and the tool-list watcher, for the app's lifespan."""
        async with self.manager.run(), self.mcp.watching():
            yield


class LazyEndpoint:
    """Creates and starts the :class:`McpEndpoint` on the first request; stops it with the app.

    The session manager's task group must be entered and left by one task, so a task of its own
    runs it from the first request until :meth:`close`.
    """

    def __init__(self, app: Litestar) -> None:
        self._app = app
        self._endpoint: McpEndpoint | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def endpoint(self) -> McpEndpoint:
        """The running endpoint (started now if this is the first request)."""
        if self._endpoint is None:
            async with self._lock:
                if self._endpoint is None:
                    endpoint = McpEndpoint(self._app.state.platform, self._app.state.settings)
                    started = asyncio.Event()
                    task = asyncio.create_task(self._run(endpoint, started), name="mcp-endpoint")
                    waiting = asyncio.create_task(started.wait())
                    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    if not started.is_set():  # it failed to start: raise why; the next request tries again
                        task.result()
                    self._task, self._endpoint = task, endpoint
        return self._endpoint

    async def _run(self, endpoint: McpEndpoint, started: asyncio.Event) -> None:
        async with endpoint.running():
            started.set()
            await self._stop.wait()

    @property
    def closing(self) -> bool:
        """The app is shutting down: no endpoint starts now."""
        return self._stop.is_set()

    async def close(self) -> None:
        """Stop the endpoint if it was started (the app is shutting down)."""
        self._stop.set()
        if self._task is not None:
            await self._task


@asgi(MCP_PATH, copy_scope=True, include_in_schema=False)
async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The MCP endpoint (streamable HTTP: POST messages, GET the server's stream, DELETE the session)."""
    state = scope["app"].state
    actor = await _authenticate(state.platform, scope, send)
    if actor is None:
        return
    lazy: LazyEndpoint = state[_STATE_KEY]
    if lazy.closing:
        await _refuse(send, 503, "The server is shutting down.")
        return
    await (await lazy.endpoint()).handle(scope, receive, send, actor)


@contextlib.asynccontextmanager
async def mcp_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Make the MCP endpoint available while the app serves (it starts on its first request)."""
    lazy = LazyEndpoint(app)
    app.state[_STATE_KEY] = lazy
    try:
        yield
    finally:
        await lazy.close()
