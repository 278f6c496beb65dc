"""The Litestar application factory."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.engine.platform import Platform
from app.services.chat.turns import recover_interrupted_turns
from app.settings import Settings
from app.web.api import ai as ai_api
from app.web.api import approvals as approvals_api
from app.web.api import audit as audit_api
from app.web.api import config as config_api
from app.web.api import endpoints as endpoints_api
from app.web.api import files as files_api
from app.web.api import forms as forms_api
from app.web.api import integrations as integrations_api
from app.web.api import knowledge as knowledge_api
from app.web.api import mcp as mcp_api
from app.web.api import notebook_runs as notebook_runs_api
from app.web.api import publish as publish_api
from app.web.api import schedules as schedules_api
from app.web.api import sign_in as sign_in_api
from app.web.api import tables as tables_api
from app.web.api.admin import ApiKeyController, OrganizationController, RoleController, UserController
from app.web.api.auth import AuthController, SdkContextController
from app.web.api.chat import chat_runtime_of
from app.web.api.endpoint_openapi import install_openapi as install_endpoint_openapi
from app.web.api.executions import ExecutionController
from app.web.api.unavailable import UNAVAILABLE_HANDLERS
from app.web.api.workflows import DataProviderController, WorkflowController, WorkspaceController
from app.web.api_reference import openapi_config
from app.web.audit_support import ClientAddressMiddleware
from app.web.deps import provide_actor
from app.web.errors import EXCEPTION_HANDLERS
from app.web.guards import guard_middleware, security_headers
from app.web.markdown import register_filters
from app.web.mcp import mcp_app, mcp_lifespan
from app.web.pages import PAGE_HANDLERS
from app.web.pages.mcp_admin import MCP_ADMIN_PAGE_HANDLERS
from app.web.pages.sign_in import SIGN_IN_PAGE_HANDLERS
from app.web.pages.sign_in_admin import SIGN_IN_ADMIN_PAGE_HANDLERS
from app.web.rate_limits import rate_limits_mode, shared_login_limit
from app.web.sign_in_flow import THROTTLED_GETS, THROTTLED_POSTS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

# Controllers served both as the JSON API (/api) and as the SDK API (/api/sdk/v1).
SHARED_CONTROLLERS = [
    WorkflowController,
    DataProviderController,
    ExecutionController,
    OrganizationController,
    UserController,
    RoleController,
    *config_api.CONTROLLERS,
    *tables_api.CONTROLLERS,
    *files_api.CONTROLLERS,
    *forms_api.CONTROLLERS,
    *knowledge_api.CONTROLLERS,
    *ai_api.CONTROLLERS,
    *integrations_api.CONTROLLERS,
]

# JSON API only (not reachable with per-execution SDK tokens).
API_ONLY_CONTROLLERS = [
    ApiKeyController,
    AuthController,
    WorkspaceController,
    *schedules_api.CONTROLLERS,
    *endpoints_api.CONTROLLERS,
    *notebook_runs_api.CONTROLLERS,
    *publish_api.CONTROLLERS,
    *audit_api.CONTROLLERS,
    *approvals_api.CONTROLLERS,
    *mcp_api.CONTROLLERS,
    *sign_in_api.CONTROLLERS,
]


LOGIN_PATHS = frozenset({"/login", "/api/auth/login", "/account/password", *THROTTLED_POSTS})  # passwords, code step


async def _is_login_attempt(request: Request[Any, Any, Any]) -> bool:
    # Only password checks are throttled: they are the public endpoints a guesser would hammer.
    # Async on purpose: Litestar runs a sync check in a thread pool, a thread hop on every request.
    return (request.method == "POST" and request.url.path in LOGIN_PATHS) or request.url.path in THROTTLED_GETS


def _key_fast_path(path: str) -> bool:
    # The JSON and SDK APIs, less the sign-in routes (they read and write the session, and are throttled).
    return (
        path.startswith("/api/")
        and not path.startswith("/api/auth")
        and path not in LOGIN_PATHS
        and path not in THROTTLED_GETS
    )


def session_secret(home: Path, secret_key: str | None = None) -> bytes:
    """The cookie-session key: derived from ``BIFROST_SECRET_KEY`` when set, else ``<home>/session.key``.

    Derived, so that every server sharing the secret key (several behind a load balancer) accepts the
    cookies of the others; a key file is one server's own (created once with mode 0600).
    """
    if secret_key and secret_key.replace(",", " ").split():
        first = secret_key.replace(",", " ").split()[0]  # the current key (rotation prepends one)
        return hmac.new(first.encode(), b"bifrost session cookie v1", hashlib.sha256).digest()
    path = home / "session.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()[:32]


class _AppRouter(Router):
    """A router built for one app, which Litestar registers as it is instead of a deep copy of it.

    ``Router.register`` deep-copies every Router instance it is given, so that one instance can be
    registered on several apps. The /api and /api/sdk/v1 routers are built anew by each ``create_app`` and
    registered once, so copying them (every handler of both: a third of the CPU of building the app,
    which the tests do hundreds of times) buys nothing. Litestar does not copy the routers it makes itself
    for each controller (``Controller.as_router``) either.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> _AppRouter:
        return self  # registered once, on the app it was built for (see the class docstring)


@get("/healthz", include_in_schema=False, exclude_from_auth=True)
async def healthz(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Liveness only: this route is public, so it says nothing about the install."""
    return {"status": "ok"}


def create_app(settings: Settings, platform: Platform | None = None, *, start_platform: bool = True) -> Litestar:
    """Build the web app around a platform (created from ``settings`` when not given).

    Args:
        settings: Platform settings.
        platform: An existing platform (tests, CLI); created when None.
        start_platform: Start and stop the platform with the app's lifespan.

    Returns:
        The Litestar app; ``app.state.platform`` is the platform.
    """
    platform = platform or Platform(settings)

    async def on_startup(app: Litestar) -> None:
        if start_platform and not platform.started:
            await platform.start()
            running: set[str] = set()
            if platform.hub.distributed:  # listening for other servers' turns from the start, and not ending them
                relay = chat_runtime_of(app.state).relay
                running = await relay.gather_active() if relay is not None else set()
            await recover_interrupted_turns(platform.sessions, running)  # chat turns ran in the stopped process

    async def on_shutdown(app: Litestar) -> None:
        if start_platform and platform.started:
            await platform.stop()

    api = _AppRouter(
        path="/api",
        route_handlers=[*SHARED_CONTROLLERS, *API_ONLY_CONTROLLERS],
    )
    sdk = _AppRouter(
        path="/api/sdk/v1",
        route_handlers=[*SHARED_CONTROLLERS, SdkContextController, *UNAVAILABLE_HANDLERS],
        include_in_schema=False,
    )
    session_config = CookieBackendConfig(
        secret=session_secret(settings.home, settings.secret_key),
        httponly=True,
        samesite="lax",
        max_age=settings.session_max_age,
        key="bifrost_session",
        secure=settings.resolved_cookie_secure,
    )
    app = Litestar(
        route_handlers=[
            api,
            sdk,
            healthz,
            mcp_app,  # /mcp: the MCP server (docs/mcp.md)
            *MCP_ADMIN_PAGE_HANDLERS,  # /admin/mcp: external MCP servers for chat agents
            *PAGE_HANDLERS,
            *SIGN_IN_PAGE_HANDLERS,  # single sign-on, the code step, /account/security (docs/sign-in.md)
            *SIGN_IN_ADMIN_PAGE_HANDLERS,
            create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False),
        ],
        dependencies={"actor": Provide(provide_actor)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            ClientAddressMiddleware,  # the address audit events record
            # Body limit and cross-site check first: nothing below (rate limits, sessions, CSRF) may read a
            # body before its limit is checked. Then the layers only browsers need, which an API key's call to
            # the JSON API skips (app/web/guards.py GuardMiddleware): it is authenticated by its key alone.
            *guard_middleware(
                settings,
                browser_layers=[
                    # Password attempts: counted in this process, or on every server when limits are shared.
                    shared_login_limit(settings.login_rate_limit_per_minute, _is_login_attempt)
                    if rate_limits_mode(settings) != "local"
                    else RateLimitConfig(
                        rate_limit=("minute", settings.login_rate_limit_per_minute),
                        check_throttle_handler=_is_login_attempt,
                    ).middleware,
                    session_config.middleware,
                ],
                key_fast_path=_key_fast_path,
            ),
        ],
        csrf_config=CSRFConfig(
            secret=session_secret(settings.home, settings.secret_key).hex(),
            exclude=["/api/", "/mcp"],  # API keys only there, never cookies
            cookie_httponly=False,
            cookie_secure=settings.resolved_cookie_secure,
        ),
        before_send=[security_headers(settings)],
        template_config=TemplateConfig(
            directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=register_filters
        ),
        openapi_config=openapi_config(),
        on_startup=[on_startup],
        lifespan=[mcp_lifespan],
        on_shutdown=[on_shutdown],
        state=State({"platform": platform, "settings": settings}),
        debug=False,
    )
    install_endpoint_openapi(app)  # the workflows' /api/endpoints/<name> paths, following workspace syncs
    return app
