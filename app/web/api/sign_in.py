"""Sign-in through the JSON API: the second step, the caller's own TOTP factor, and the admin settings.

* ``POST /api/auth/totp`` ``{"code"}`` or ``{"recovery_code"}``: finishes a password sign-in that
  ``POST /api/auth/login`` left waiting (``{"second_factor": "totp"}``); rate limited like the password.
* ``GET /api/auth/totp``, ``POST /api/auth/totp/enrolment``, ``POST /api/auth/totp/enrolment/confirm``,
  ``POST /api/auth/totp/disable`` ``{"code"}``: the caller's own factor (a signed-in user, not an API key:
  a key must not change how its owner signs in).
* Platform admins: ``GET/PUT /api/sign-in/policy``; ``GET/POST /api/sign-in/providers``,
  ``GET/PATCH/DELETE /api/sign-in/providers/{ref}``; ``PUT /api/sign-in/organizations/{org_id}``
  ``{"sso_only"}``; ``DELETE /api/sign-in/users/{user_id}/totp`` (reset a user's factor).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from litestar import Controller, Request, delete, get, patch, post, put

from app.models import User
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError, PermissionDeniedError, require_bool
from app.services.identity import totp
from app.services.identity.sso_providers import (
    SsoProviderBody,
    SsoProviderService,
    SsoProviderView,
    provider_view,
    set_organization_sso_only,
)
from app.services.identity.totp import TotpService
from app.web.api.schemas import Deleted, LoginResult, documented_body
from app.web.deps import db
from app.web.sign_in_flow import box_of, code_sign_in


class CodeBody(TypedDict, total=False):
    """A 6-digit code of the authenticator app, or (second step only) a recovery code."""

    code: str
    recovery_code: str


class TotpStatus(TypedDict):
    """Whether the user has two-factor sign-in on."""

    enabled: bool
    confirmed_at: str | None
    recovery_codes_left: int


class TotpEnrolment(TypedDict):
    """A new TOTP secret: for an authenticator app, as text, ``otpauth://`` URI and QR code (SVG data URI)."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodes(TypedDict):
    """Recovery codes, shown this once (each signs in once)."""

    recovery_codes: list[str]


class PolicyBody(TypedDict):
    """Who must use a second factor with a password: ``none``, ``admins`` (platform admins) or ``everyone``."""

    require_totp: str


class SsoOnlyBody(TypedDict):
    """Whether the organization's users may sign in only through single sign-on."""

    sso_only: bool


class OrganizationSignIn(TypedDict):
    """An organization's sign-in rule."""

    organization_id: str
    name: str
    sso_only: bool


class TotpReset(TypedDict):
    """Whether a factor was removed (``false``: the user had none)."""

    reset: bool


def _body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError("The body must be a JSON object.")
    return data


def _interactive(actor: Actor) -> None:
    if actor.api_key_id or actor.execution_id:
        raise PermissionDeniedError("Two-factor settings change only in a signed-in session, not with an API key.")


async def _user(session: Any, actor: Actor) -> User:
    user = await session.get(User, actor.user_id)
    if user is None:
        raise NotFoundError("Your user no longer exists.")
    return user


class TotpController(Controller):
    """The second step of a password sign-in, and the caller's own factor."""

    path = "/auth/totp"
    tags = ["auth"]

    @post("/", status_code=200, exclude_from_auth=True)
    async def verify(
        self, request: Request[Any, Any, Any], data: Annotated[Any, documented_body(CodeBody)]
    ) -> LoginResult:
        """Finish a password sign-in with a code (or a recovery code); sets the session cookie."""
        body = _body(data)
        code, recovery = body.get("code"), body.get("recovery_code")
        await code_sign_in(request, code if isinstance(code, str) else None, recovery or None)
        async with db(request) as session:
            user = await session.get(User, request.session["user_id"])
            assert user is not None
        return {"user_id": user.id, "email": user.email, "name": user.name}

    @get("/")
    async def status(self, request: Request[Any, Any, Any], actor: Actor) -> TotpStatus:
        """Whether the caller has two-factor sign-in on."""
        async with db(request) as session:
            return await TotpService(session, box_of(request)).status(actor.user_id)  # type: ignore[return-value]

    @post("/enrolment", status_code=201)
    async def enrol(self, request: Request[Any, Any, Any], actor: Actor) -> TotpEnrolment:
        """Start enrolment: a new secret (replacing one not yet confirmed)."""
        _interactive(actor)
        async with db(request) as session:
            enrolment = await TotpService(session, box_of(request)).begin_enrolment(await _user(session, actor))
        return enrolment  # type: ignore[return-value]

    @post("/enrolment/confirm", status_code=200)
    async def confirm(
        self, request: Request[Any, Any, Any], actor: Actor, data: Annotated[Any, documented_body(CodeBody)]
    ) -> RecoveryCodes:
        """Turn the factor on with a first code; returns the recovery codes (shown once)."""
        _interactive(actor)
        async with db(request) as session:
            service = TotpService(session, box_of(request))
            codes = await service.confirm_enrolment(await _user(session, actor), _body(data).get("code"))
        return {"recovery_codes": codes}

    @post("/disable", status_code=200)
    async def disable(
        self, request: Request[Any, Any, Any], actor: Actor, data: Annotated[Any, documented_body(CodeBody)]
    ) -> TotpReset:
        """Turn the caller's factor off; a current code is required."""
        _interactive(actor)
        async with db(request) as session:
            user = await _user(session, actor)
            service = TotpService(session, box_of(request))
            refusal = await service.check_code(user, _body(data).get("code"))
            removed = await service.remove(actor, user) if refusal is None else False
        if refusal is not None:
            raise InvalidInputError.field("code", refusal)
        return {"reset": removed}


class SignInAdminController(Controller):
    """Platform admins: providers, the second-factor policy, SSO-only organizations, factor resets."""

    path = "/sign-in"
    tags = ["sign-in"]

    @get("/policy")
    async def get_policy(self, request: Request[Any, Any, Any], actor: Actor) -> PolicyBody:
        """Who must use a second factor with a password."""
        actor.require_admin("read the sign-in policy")
        async with db(request) as session:
            return {"require_totp": await totp.get_policy(session)}

    @put("/policy")
    async def set_policy(
        self, request: Request[Any, Any, Any], actor: Actor, data: Annotated[Any, documented_body(PolicyBody)]
    ) -> PolicyBody:
        """Set who must use a second factor (they enrol at their next password sign-in)."""
        async with db(request) as session:
            return {"require_totp": await totp.set_policy(session, actor, _body(data).get("require_totp"))}

    @get("/providers")
    async def providers(self, request: Request[Any, Any, Any], actor: Actor) -> list[SsoProviderView]:
        """Every single sign-on provider."""
        async with db(request) as session:
            return [provider_view(p) for p in await SsoProviderService(session, box_of(request)).list(actor)]

    @post("/providers", status_code=201)
    async def create_provider(
        self, request: Request[Any, Any, Any], actor: Actor, data: Annotated[Any, documented_body(SsoProviderBody)]
    ) -> SsoProviderView:
        """Add a provider (``kind``: ``oidc``, ``entra`` with ``tenant``, ``google``)."""
        async with db(request) as session:
            return provider_view(await SsoProviderService(session, box_of(request)).create(actor, data))

    @get("/providers/{ref:str}")
    async def provider(self, request: Request[Any, Any, Any], actor: Actor, ref: str) -> SsoProviderView:
        """One provider, by id or slug."""
        async with db(request) as session:
            return provider_view(await SsoProviderService(session, box_of(request)).get(actor, ref))

    @patch("/providers/{ref:str}")
    async def update_provider(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        ref: str,
        data: Annotated[Any, documented_body(SsoProviderBody)],
    ) -> SsoProviderView:
        """Change some fields of a provider."""
        async with db(request) as session:
            return provider_view(await SsoProviderService(session, box_of(request)).update(actor, ref, data))

    @delete("/providers/{ref:str}", status_code=200)
    async def delete_provider(self, request: Request[Any, Any, Any], actor: Actor, ref: str) -> Deleted:
        """Delete a provider (users stay; their links to it go)."""
        async with db(request) as session:
            return {"deleted": await SsoProviderService(session, box_of(request)).delete(actor, ref)}

    @put("/organizations/{org_id:str}")
    async def set_sso_only(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        org_id: str,
        data: Annotated[Any, documented_body(SsoOnlyBody)],
    ) -> OrganizationSignIn:
        """Make single sign-on the only way in for an organization's users (platform admins keep passwords)."""
        actor.require_admin("change how organizations sign in")
        sso_only = require_bool(_body(data).get("sso_only"), "sso_only")
        async with db(request) as session:
            org = await set_organization_sso_only(session, actor, org_id, sso_only)
        return {"organization_id": org.id, "name": org.name, "sso_only": org.sso_only}

    @delete("/users/{user_id:str}/totp", status_code=200)
    async def reset_totp(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> TotpReset:
        """Remove a user's factor (lost phone); they sign in with the password alone, or enrol if required."""
        actor.require_admin("reset two-factor sign-in")
        async with db(request) as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"User {user_id!r} not found.")
            return {"reset": await TotpService(session, box_of(request)).remove(actor, user)}


CONTROLLERS = [TotpController, SignInAdminController]
