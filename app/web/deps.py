"""Request-scoped helpers: the platform, database transactions and the authenticated actor."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import transaction
from app.engine.platform import Platform
from app.models import User
from app.services.actor import Actor
from app.services.errors import AuthenticationError, PermissionDeniedError
from app.services.identity.auth import AuthService, cached_actor_for_token
from app.services.identity.security import EXECUTION_TOKEN_PREFIX
from app.services.identity.users import end_sessions
from app.web.key_scopes import check_key_scope

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"


def get_platform(state: State) -> Platform:
    """The platform stored on the app state at start-up."""
    return state.platform  # type: ignore[no-any-return]


@asynccontextmanager
async def db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """A transaction for one unit of work in a handler (commit on success, rollback on error)."""
    async with transaction(get_platform(request.app.state).sessions) as session:
        yield session


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    """The API key / SDK token of the request (``Authorization: Bearer`` or ``X-Bifrost-Key``)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-bifrost-key") or None


async def resolve_actor(request: Request[Any, Any, Any]) -> Actor:
    """Authenticate the request: bearer token / API key, else the session cookie.

    Cookie-authenticated unsafe requests to the JSON API must carry the CSRF
    token in ``X-CSRFToken`` (pages' forms are checked by the CSRF middleware).

    Raises:
        AuthenticationError: No or invalid credentials.
    """
    requested_org = request.headers.get("x-bifrost-org") or None
    token = bearer_token(request)
    if token:
        if token.startswith(EXECUTION_TOKEN_PREFIX) and not request.url.path.startswith("/api/sdk/"):
            # Execution tokens are for the SDK API only: a workflow cannot reach key or admin routes.
            raise AuthenticationError("Execution tokens are only accepted by the SDK API (/api/sdk/v1).")
        # Hot path of every API and SDK call: a cached token needs no database session at all.
        actor = cached_actor_for_token(token, requested_org)
        if actor is None:
            async with db(request) as session:
                actor = await AuthService(session).actor_for_token(token, requested_org)
        if actor.api_key_scope is not None:
            check_key_scope(actor, request.method, request.url.path)
        return actor
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if not user_id:
        raise AuthenticationError(
            "Authentication required: log in, or send an API key as 'Authorization: Bearer <key>'."
        )
    if request.method in UNSAFE_METHODS and request.url.path.startswith("/api/"):
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not hmac.compare_digest(cookie, header):
            raise PermissionDeniedError("CSRF token missing or wrong: send the csrftoken cookie value in X-CSRFToken.")
    async with db(request) as session:
        try:
            return await AuthService(session).actor_for_user(
                user_id, requested_org or request.session.get("org_id"), session_version=request.session.get("sv", 0)
            )
        except AuthenticationError:
            request.clear_session()  # ended elsewhere (logout, password change...): drop the dead cookie
            raise


def start_session(request: Request[Any, Any, Any], user: User) -> None:
    """Sign the user in on this browser: the cookie carries the user's current session version."""
    request.set_session({"user_id": user.id, "sv": user.session_version})


async def end_session(request: Request[Any, Any, Any]) -> None:
    """Sign out: end every session of the cookie's user (copies of the cookie included) and clear it."""
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id:
        async with db(request) as session:
            await end_sessions(session, user_id)
    request.clear_session()


async def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """Litestar dependency wrapper of :func:`resolve_actor`."""
    return await resolve_actor(request)
