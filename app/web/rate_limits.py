"""Rate limits of the web layer (sign-in, public endpoints and forms, notebook log posts) on one or several servers.

``BIFROST_RATE_LIMITS``: ``local`` keeps the counts in this process, exactly as one server always did (the
login limit is Litestar's middleware, the others :class:`~app.web.api.endpoints.RateLimiter`); ``database``
or ``redis`` count in a store every server shares (:mod:`app.services.rate_limits`), so an address gets one
budget whichever server the load balancer picks. ``auto`` is ``redis`` with ``BIFROST_REDIS_URL``,
``database`` when live events travel through Postgres (several servers), else ``local``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import TooManyRequestsException
from litestar.types import ASGIApp, Receive, Scope, Send

from app.engine.event_backends import events_mode
from app.services.rate_limits import DatabaseCounter, RateLimits, RedisCounter
from app.settings import Settings
from app.web.deps import get_platform


def rate_limits_mode(settings: Settings) -> str:
    """Where this server counts: ``local``, ``database`` or ``redis`` (``auto`` resolved)."""
    mode = settings.rate_limits
    if mode != "auto":
        return mode
    if settings.redis_url:
        return "redis"
    return "database" if events_mode(settings) == "postgres" else "local"


def shared_limits(state: State) -> RateLimits | None:
    """The shared counters of this app (made on first use), or None when limits are local."""
    limits = state.get("shared_rate_limits")
    if limits is None:
        platform = get_platform(state)
        mode = rate_limits_mode(platform.settings)
        if mode == "local":
            return None
        if mode == "redis":
            if not platform.settings.redis_url:
                raise ValueError("BIFROST_RATE_LIMITS=redis needs BIFROST_REDIS_URL")
            limits = RateLimits(RedisCounter(platform.settings.redis_url), shared=True)
        else:
            limits = RateLimits(DatabaseCounter(platform.sessions), shared=True)
        state["shared_rate_limits"] = limits
    return limits  # type: ignore[no-any-return]


async def retry_after(state: State, limit: str, per_minute: int, who: str) -> float | None:
    """Count one call of ``who`` against ``limit``; None when allowed, else the seconds to wait.

    Local limits use this server's :class:`~app.web.api.endpoints.RateLimiter` (no I/O), shared ones one
    round trip to the database or Redis.
    """
    shared = shared_limits(state)
    if shared is not None:
        return await shared.retry_after(limit, per_minute, who)
    from app.web.api.endpoints import RateLimiter  # the embedded default, unchanged

    limiter = state.get(f"{limit}_limiter")
    if limiter is None:
        limiter = RateLimiter(per_minute)
        state[f"{limit}_limiter"] = limiter
    return limiter.retry_after(who)  # type: ignore[no-any-return]


def too_many(wait: float, what: str) -> TooManyRequestsException:
    """A 429 naming what was limited, with ``Retry-After`` in whole seconds."""
    seconds = max(1, math.ceil(wait))
    return TooManyRequestsException(
        detail=f"Too many {what}; try again in {seconds} s.", headers={"Retry-After": str(seconds)}
    )


def shared_login_limit(
    per_minute: int, is_attempt: Callable[[Request[Any, Any, Any]], Awaitable[bool]]
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: password and code attempts per client address, counted on every server (429 above).

    Takes the place of Litestar's in-process ``RateLimitMiddleware`` when limits are shared.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                request: Request[Any, Any, Any] = Request(scope, receive)
                if await is_attempt(request):
                    address = request.client.host if request.client else "unknown"
                    wait = await retry_after(request.app.state, "login", per_minute, address)
                    if wait is not None:
                        raise too_many(wait, "sign-in attempts from your address")
            await app(scope, receive, send)

        return limited

    return middleware
