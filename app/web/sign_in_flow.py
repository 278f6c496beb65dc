"""The web side of signing in beyond a password: the pending second step, single sign-on start and callback.

Shared by the login page (``app/web/pages/sign_in.py``) and the JSON API (``app/web/api/sign_in.py``).

**Pending second step.** A right password for a user with a TOTP factor (or whom the policy requires to
enrol) starts no session: the signed session cookie gets a marker ``{"uid", "sv", "exp", "step", "next"}``
and no ``user_id``, so nothing accepts it as signed in. The marker lasts :data:`PENDING_SECONDS`, is void once
the user's session version changes, and is replaced by the real session when the code is right.

**Single sign-on.** The start stores the hash of ``state`` both in the database (single use, see
:mod:`app.services.identity.sso`) and in this browser's session cookie, so a callback URL made in another
browser (login CSRF: signing a victim into the attacker's account) is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request

from app.models import User
from app.services.audit import events as audit
from app.services.errors import AuthenticationError
from app.services.identity import sso
from app.services.identity.auth import AuthService, SecondFactorRequired
from app.services.identity.oidc import OidcError
from app.services.identity.sso_providers import CALLBACK_PATH
from app.services.identity.totp import TotpService
from app.services.secrets import SecretBox, secret_box
from app.settings import Settings
from app.web.audit_support import audited_login, client_ip
from app.web.deps import db, start_session

PENDING_KEY = "pending_2fa"
SSO_KEY = "sso_state"
PENDING_SECONDS = 300
# Sign-in steps rate limited like the password (app/web/app.py): the code step, and the SSO callback.
THROTTLED_POSTS = frozenset({"/login/totp", "/login/totp/enrol", "/api/auth/totp"})
THROTTLED_GETS = frozenset({CALLBACK_PATH})


def safe_next(target: str, default: str = "/") -> str:
    """Only local paths (the same rule as the pages' ``next``): never redirect to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else default


def box_of(request: Request[Any, Any, Any]) -> Callable[[], SecretBox]:
    """A function returning the server's :class:`SecretBox` (made only when a secret is read or written)."""
    settings: Settings = request.app.state.settings

    def box() -> SecretBox:
        return secret_box(settings.secret_key, settings.home)

    return box


def public_url(request: Request[Any, Any, Any]) -> str:
    """This server's base URL as browsers reach it (``BIFROST_PUBLIC_URL``, else the request's)."""
    settings: Settings = request.app.state.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


# ----- pending second step ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    """A password sign-in waiting for its second step."""

    user_id: str
    session_version: int
    step: str
    next_url: str


def set_pending(request: Request[Any, Any, Any], exc: SecondFactorRequired, next_url: str) -> None:
    """Replace the session with a pending-second-step marker (no ``user_id``: nobody is signed in)."""
    marker = {
        "uid": exc.user_id,
        "sv": exc.session_version,
        "step": exc.step,
        "exp": int(time.time()) + PENDING_SECONDS,
        "next": safe_next(next_url),
    }
    request.set_session({PENDING_KEY: marker})


def get_pending(request: Request[Any, Any, Any], step: str | None = None) -> Pending | None:
    """The pending sign-in of this browser, if one is waiting and not expired."""
    marker = request.session.get(PENDING_KEY) if "session" in request.scope else None
    if not isinstance(marker, dict) or int(marker.get("exp", 0)) < time.time():
        return None
    if step is not None and marker.get("step") != step:
        return None
    return Pending(str(marker["uid"]), int(marker["sv"]), str(marker["step"]), str(marker.get("next") or "/"))


NO_PENDING = "No sign-in is waiting for a code (or it took more than five minutes): enter your password again."


async def password_sign_in(
    request: Request[Any, Any, Any], email: str, password: str, next_url: str
) -> User | SecondFactorRequired:
    """Check a password: a user when the sign-in is complete (session started), else the second step needed.

    Raises:
        AuthenticationError: Refused (audited).
    """
    try:
        user = await audited_login(request, email, password)
    except SecondFactorRequired as exc:
        set_pending(request, exc, next_url)
        return exc
    start_session(request, user)
    return user


async def _pending_user(session: Any, pending: Pending) -> User:
    user = await session.get(User, pending.user_id)
    if user is None or not user.is_active or user.session_version != pending.session_version:
        raise AuthenticationError(NO_PENDING)
    await AuthService(session).check_org_active(user)
    return user


async def _record_failure(request: Request[Any, Any, Any], user_id: str | None, reason: str, method: str) -> None:
    async with db(request) as session:
        user = await session.get(User, user_id) if user_id else None
        await audit.record(
            session,
            None,
            audit.LOGIN_FAILED,
            "user",
            user.id if user else None,
            user.organization_id if user else None,
            {"reason": reason, "method": method},
            client_ip(request),
            actor_email=user.email if user else None,
        )


async def code_sign_in(request: Request[Any, Any, Any], code: str | None, recovery_code: str | None) -> Pending:
    """The second step: a TOTP code or a recovery code; on success the session starts.

    Returns:
        The pending sign-in that was finished (its ``next_url`` is where to go).

    Raises:
        AuthenticationError: No pending sign-in, or a wrong, reused or rate limited code (audited).
    """
    pending = get_pending(request, "totp")
    if pending is None:
        raise AuthenticationError(NO_PENDING)
    method = "recovery_code" if recovery_code else "totp"
    refusal: str | None
    async with db(request) as session:
        try:
            user = await _pending_user(session, pending)
        except AuthenticationError:
            request.clear_session()
            raise
        service = TotpService(session, box_of(request))
        if recovery_code:
            refusal = await service.use_recovery_code(user, recovery_code)
        else:
            refusal = await service.check_code(user, code)
        if refusal is None:
            await AuthService(session).record_login(user, client_ip(request), {"method": f"password+{method}"})
    # The failure count is committed with the refusal above; the audit event has its own transaction.
    if refusal is not None:
        await _record_failure(request, pending.user_id, refusal, f"password+{method}")
        raise AuthenticationError(refusal)
    start_session(request, user)
    return pending


async def pending_enrolment(request: Request[Any, Any, Any], *, restart: bool = True) -> dict[str, str]:
    """The enrolment the policy requires of a pending sign-in: secret, URI, QR code.

    Args:
        request: The request.
        restart: A new secret (the page is loaded); False shows the one started (a wrong first code).
    """
    pending = get_pending(request, "enrol")
    if pending is None:
        raise AuthenticationError(NO_PENDING)
    async with db(request) as session:
        user = await _pending_user(session, pending)
        service = TotpService(session, box_of(request))
        current = None if restart else await service.pending_enrolment(user)
        return current or await service.begin_enrolment(user)


async def finish_pending_enrolment(request: Request[Any, Any, Any], code: str) -> tuple[Pending, list[str]]:
    """Confirm the required enrolment with a first code: the session starts; returns the recovery codes."""
    pending = get_pending(request, "enrol")
    if pending is None:
        raise AuthenticationError(NO_PENDING)
    async with db(request) as session:
        user = await _pending_user(session, pending)
        codes = await TotpService(session, box_of(request)).confirm_enrolment(user, code)
        await AuthService(session).record_login(user, client_ip(request), {"method": "password+totp_enrolment"})
    start_session(request, user)
    return pending, codes


# ----- single sign-on --------------------------------------------------------------------------------
async def sso_start(request: Request[Any, Any, Any], ref: str, next_url: str) -> str:
    """Begin a single sign-on with provider ``ref``; returns the provider URL to redirect the browser to.

    Raises:
        OidcError: Unknown provider or unreachable discovery (audited).
    """
    try:
        async with db(request) as session:
            url, state = await sso.start_sign_in(
                session, box_of(request), ref, public_url(request) + CALLBACK_PATH, safe_next(next_url)
            )
    except OidcError as exc:
        async with db(request) as session:
            await sso.record_failed_sso(session, ref, str(exc), None, client_ip(request))
        raise
    current = request.session if isinstance(request.scope.get("session"), dict) else {}
    request.set_session({**current, SSO_KEY: sso.state_hash(state)})
    return url


async def sso_callback(
    request: Request[Any, Any, Any], state: str, code: str, error: str | None, error_description: str | None
) -> str:
    """Finish a single sign-on; the session starts. Returns where to go next.

    Raises:
        OidcError: Replayed, unknown or foreign ``state``, provider error, token or user refused (audited).
    """
    ip = client_ip(request)
    bound = request.session.get(SSO_KEY) if "session" in request.scope else None
    provider_ref: str | None = None
    try:
        if not state:
            raise OidcError("The identity provider sent no state: start the sign-in again.")
        async with db(request) as session:  # committed at once: the state is spent whatever follows
            pending = await sso.consume_state(session, state)
        provider_ref = pending.provider_slug
        if bound != sso.state_hash(state):
            raise OidcError("This sign-in was started in another browser: start it again here.")
        if error:
            detail = f" ({error_description[:200]})" if error_description else ""
            raise OidcError(f"The identity provider refused the sign-in: {error[:100]}{detail}.")
        if not code:
            raise OidcError("The identity provider sent no authorization code.")
        async with db(request) as session:
            user = await sso.complete_sign_in(session, box_of(request), pending, code, ip)
    except OidcError as exc:
        request.session.pop(SSO_KEY, None)
        async with db(request) as session:
            await sso.record_failed_sso(session, provider_ref, str(exc), getattr(exc, "email", None), ip)
        raise
    start_session(request, user)
    return pending.next_url
