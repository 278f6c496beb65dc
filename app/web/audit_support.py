"""What the web layer gives the audit log: the client address of each request, and audited sign-ins.

The address is the TCP peer, or the address a trusted proxy forwarded (uvicorn rewrites the peer only for
``BIFROST_TRUSTED_PROXIES``, see app/web/server.py), so a client cannot choose what the log records.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.types import ASGIApp, Receive, Scope, Send

from app.models import User
from app.services.audit.events import reset_client_address, set_client_address
from app.services.errors import AuthenticationError
from app.services.identity.auth import AuthService, record_failed_login
from app.web.deps import db


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client address of a request (None when the server does not know it)."""
    return request.client.host if request.client else None


class ClientAddressMiddleware:
    """Binds the request's client address for :func:`app.services.audit.events.record` (a context variable)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = set_client_address(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_client_address(token)


async def audited_login(request: Request[Any, Any, Any], email: str, password: str) -> User:
    """Check a password sign-in; success and failure each write one audit event with the client address.

    Raises:
        AuthenticationError: Wrong email or password, inactive user or organization.
    """
    ip = client_ip(request)
    try:
        async with db(request) as session:
            return await AuthService(session).login(email, password, ip)
    except AuthenticationError as exc:
        async with db(request) as session:
            await record_failed_login(session, email, str(exc), ip)
        raise
