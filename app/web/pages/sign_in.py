"""Sign-in pages beyond the password: single sign-on, the code step, enrolment, the account's two-factor page.

* ``POST /login/sso/{slug}`` (CSRF form of the login page's button): 303 to the identity provider.
* ``GET /login/sso/callback``: where the provider sends the browser back; signs in, or shows the login
  page with what went wrong (200, like a wrong password).
* ``GET/POST /login/totp``: the code (or a recovery code) after a right password.
* ``GET/POST /login/totp/enrol``: the enrolment the sign-in policy requires before the first session.
* ``GET /account/security`` and its forms: the signed-in user's own factor (enrol, recovery codes, turn off).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app.models import User
from app.services.actor import Actor
from app.services.errors import AuthenticationError, DomainError, InvalidInputError
from app.services.identity.oidc import OidcError
from app.services.identity.sso_providers import SsoProviderService
from app.services.identity.totp import TotpService
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context, safe_next
from app.web.sign_in_flow import (
    box_of,
    code_sign_in,
    finish_pending_enrolment,
    get_pending,
    pending_enrolment,
    sso_callback,
    sso_start,
)


async def login_page(
    request: Request[Any, Any, Any], *, next_url: str = "/", error: str | None = None, email: str = ""
) -> Template:
    """The login page: the password form and a button per active single sign-on provider."""
    async with db(request) as session:
        providers = [
            {"slug": p.slug, "display_name": p.display_name}
            for p in await SsoProviderService(session, box_of(request)).active()
        ]
    context = {"next": safe_next(next_url), "error": error, "email": email, "providers": providers}
    # 200, not 401: the page itself loaded fine and shows the problem next to the form.
    return Template("pages/login.html", context=context, status_code=200)


@post("/login/sso/{slug:str}", include_in_schema=False, status_code=303)
async def sso_begin(request: Request[Any, Any, Any], slug: str) -> Template | Redirect:
    """Send the browser to the provider (a form post, so the CSRF token is checked first)."""
    form = await request.form()
    next_url = form_text(form, "next", "/")
    try:
        url = await sso_start(request, slug, next_url)
    except OidcError as exc:
        return await login_page(request, next_url=next_url, error=str(exc))
    return Redirect(url, status_code=303)


@get("/login/sso/callback", include_in_schema=False, status_code=303)
async def sso_return(request: Request[Any, Any, Any]) -> Template | Redirect:
    """The provider's redirect back (``state``, ``code`` or ``error``): verify and sign in, or show why not."""
    query = request.query_params  # read by hand: "state" is a reserved parameter name in Litestar handlers
    try:
        next_url = await sso_callback(
            request,
            query.get("state") or "",
            query.get("code") or "",
            query.get("error"),
            query.get("error_description"),
        )
    except OidcError as exc:
        return await login_page(request, error=f"Single sign-on failed: {exc}")
    return Redirect(safe_next(next_url), status_code=303)


def _code_page(request: Request[Any, Any, Any], error: str | None = None) -> Template:
    return Template("pages/sign_in/totp.html", context={"error": error}, status_code=200)


@get("/login/totp", include_in_schema=False)
async def totp_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    """The second step's form (back to the login page when no sign-in is waiting)."""
    if get_pending(request, "totp") is None:
        return Redirect("/login", status_code=303)
    return _code_page(request)


@post("/login/totp", include_in_schema=False, status_code=303)
async def totp_submit(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Check the code or recovery code; on success the session starts."""
    form = await request.form()
    try:
        pending = await code_sign_in(request, form_text(form, "code"), form_text(form, "recovery_code").strip() or None)
    except AuthenticationError as exc:
        if get_pending(request, "totp") is None:
            return await login_page(request, error=str(exc))
        return _code_page(request, str(exc))
    return Redirect(safe_next(pending.next_url), status_code=303)


@get("/login/totp/enrol", include_in_schema=False)
async def enrol_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    """The enrolment the policy requires: a fresh secret and its QR code."""
    try:
        enrolment = await pending_enrolment(request)
    except AuthenticationError:
        return Redirect("/login", status_code=303)
    return Template("pages/sign_in/enrol.html", context={"enrolment": enrolment, "action": "/login/totp/enrol"})


@post("/login/totp/enrol", include_in_schema=False, status_code=200)
async def enrol_submit(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Confirm the enrolment with a first code: the session starts and the recovery codes are shown once."""
    form = await request.form()
    try:
        pending, codes = await finish_pending_enrolment(request, form_text(form, "code"))
    except AuthenticationError as exc:
        return await login_page(request, error=str(exc))
    except DomainError as exc:
        enrolment = await pending_enrolment(request, restart=False)
        context = {"enrolment": enrolment, "action": "/login/totp/enrol", "error": str(exc)}
        return Template("pages/sign_in/enrol.html", context=context)
    return Template("pages/sign_in/recovery_codes.html", context={"codes": codes, "next": safe_next(pending.next_url)})


class AccountSecurityPages(PageController):
    """``/account/security``: the signed-in user's two-factor sign-in."""

    path = "/account/security"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, **extra: Any) -> Template:
        async with db(request) as session:
            status = await TotpService(session, box_of(request)).status(actor.user_id)
            layout = await layout_context(request, session, actor)
        return Template("pages/sign_in/account.html", context={**layout, "status": status, **extra})

    @get("/")
    async def show(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Whether two-factor sign-in is on, with the forms to change it."""
        return await self._page(request, actor)

    @post("/totp", status_code=200)
    async def begin(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Start enrolment: show the QR code and the secret."""
        async with db(request) as session:
            user = await session.get(User, actor.user_id)
            assert user is not None
            enrolment = await TotpService(session, box_of(request)).begin_enrolment(user)
        return await self._page(request, actor, enrolment=enrolment, action="/account/security/totp/confirm")

    @post("/totp/confirm", status_code=200)
    async def confirm(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Turn two-factor sign-in on with a first code; the recovery codes are shown once."""
        form = await request.form()
        try:
            async with db(request) as session:
                user = await session.get(User, actor.user_id)
                assert user is not None
                codes = await TotpService(session, box_of(request)).confirm_enrolment(user, form_text(form, "code"))
        except InvalidInputError as exc:  # a wrong first code: the same QR code again, with the reason
            async with db(request) as session:
                user = await session.get(User, actor.user_id)
                assert user is not None
                enrolment = await TotpService(session, box_of(request)).pending_enrolment(user)
            action = "/account/security/totp/confirm"
            return await self._page(request, actor, enrolment=enrolment, action=action, error=str(exc))
        return Template("pages/sign_in/recovery_codes.html", context={"codes": codes, "next": "/account/security"})

    @post("/recovery-codes", status_code=200)
    async def new_codes(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Replace the recovery codes (the old ones stop working)."""
        async with db(request) as session:
            user = await session.get(User, actor.user_id)
            assert user is not None
            codes = await TotpService(session, box_of(request)).regenerate_recovery_codes(user)
        return Template("pages/sign_in/recovery_codes.html", context={"codes": codes, "next": "/account/security"})

    @post("/totp/disable", status_code=303)
    async def disable(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Turn two-factor sign-in off; a current code proves the factor is in hand."""
        form = await request.form()
        async with db(request) as session:
            user = await session.get(User, actor.user_id)
            assert user is not None
            service = TotpService(session, box_of(request))
            refusal = await service.check_code(user, form_text(form, "code"))
            if refusal is None:
                await service.remove(actor, user)
        if refusal is not None:
            return await self._page(request, actor, error=refusal)
        flash(request, "Two-factor sign-in is off.")
        return Redirect("/account/security", status_code=303)


SIGN_IN_PAGE_HANDLERS: list[ControllerRouterHandler] = [
    sso_begin,
    sso_return,
    totp_form,
    totp_submit,
    enrol_form,
    enrol_submit,
    AccountSecurityPages,
]
