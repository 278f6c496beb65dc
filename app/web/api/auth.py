"""Login, logout and ``me`` for the JSON API, plus the SDK's ``context`` endpoint."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from pydantic import BaseModel

from app.services.actor import Actor
from app.web.api.schemas import ActorView, LoggedOut, LoginResult
from app.web.audit_support import audited_login
from app.web.deps import end_session, start_session


class LoginRequest(BaseModel):
    """Body of ``POST /api/auth/login``."""

    email: str
    password: str


def actor_view(actor: Actor) -> ActorView:
    """Who the caller is and where they act."""
    return {
        "user_id": actor.user_id,
        "email": actor.email,
        "name": actor.name,
        "organization_id": actor.organization_id,
        "acting_org_id": actor.acting_org_id,
        "is_platform_admin": actor.is_superuser,
        "is_function_key": actor.is_function_key,
        "execution_id": actor.execution_id,
    }


class AuthController(Controller):
    """Session login for browsers and scripts."""

    path = "/auth"
    tags = ["auth"]

    @post("/login", status_code=200, exclude_from_auth=True)
    async def login(self, request: Request[Any, Any, Any], data: LoginRequest) -> LoginResult:
        """Log in with email and password; sets the session cookie."""
        user = await audited_login(request, data.email, data.password)
        start_session(request, user)
        return {"user_id": user.id, "email": user.email, "name": user.name}

    @post("/logout", status_code=200)
    async def logout(self, request: Request[Any, Any, Any]) -> LoggedOut:
        """End the session, and every other session of the user (a copied cookie stops working)."""
        await end_session(request)
        return {"logged_out": True}

    @get("/me")
    async def me(self, actor: Actor) -> ActorView:
        """The authenticated caller."""
        return actor_view(actor)


class SdkContextController(Controller):
    """``GET /api/sdk/v1/context``: the identity an SDK client acts with."""

    path = "/context"
    tags = ["sdk"]

    @get("/")
    async def context(self, actor: Actor) -> ActorView:
        """The caller's identity and acting organization."""
        return actor_view(actor)
