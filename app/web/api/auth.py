"""Login, logout and ``me`` for the JSON API, plus the SDK's ``context`` endpoint."""

from __future__ import annotations

from typing import Any, TypedDict

from litestar import Controller, Request, get, post
from pydantic import BaseModel

from app.services.actor import Actor
from app.services.identity.auth import SecondFactorRequired
from app.web.api.schemas import ActorView, LoggedOut, LoginResult
from app.web.deps import end_session
from app.web.sign_in_flow import password_sign_in


class LoginRequest(BaseModel):
    """Body of ``POST /api/auth/login``."""

    email: str
    password: str


class SecondFactorPending(TypedDict):
    """The password was right; a second step must follow before the session starts."""

    second_factor: str
    detail: str


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
    async def login(self, request: Request[Any, Any, Any], data: LoginRequest) -> LoginResult | SecondFactorPending:
        """Log in with email and password; sets the session cookie.

        With two-factor sign-in on, no session starts yet: the answer is ``{"second_factor": "totp"}`` and
        ``POST /api/auth/totp`` with the code finishes the sign-in (``"enrol"``: finish on the login page).
        """
        outcome = await password_sign_in(request, data.email, data.password, "/")
        if isinstance(outcome, SecondFactorRequired):
            detail = (
                "Send the code of your authenticator app to POST /api/auth/totp."
                if outcome.step == "totp"
                else "Your account must set up two-factor sign-in first: sign in on the web page."
            )
            return {"second_factor": outcome.step, "detail": detail}
        return {"user_id": outcome.id, "email": outcome.email, "name": outcome.name}

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
