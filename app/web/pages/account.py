"""Passwords in the web UI: the signed-in user's Account page and an admin's reset of a user's password.

* ``GET /account``: who you are, your organization, the password form, a link to two-factor sign-in.
* ``POST /account/password`` (CSRF; throttled like the login form): current + new + confirm. Every
  other session of the user ends; this browser stays signed in with the new session version.
* ``GET/POST /admin/users/{id}/password`` (platform admins, CSRF): set a password, or generate one
  shown once on the answer (``Cache-Control: no-store``, never in a redirect or the session). The
  user's sessions end.

The rules live in :mod:`app.services.identity.passwords`; failed attempts at the current password
are audited as failed sign-ins, since they are password guesses too.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.models import Organization, User
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import InvalidInputError
from app.services.identity import passwords
from app.services.identity.users import UserService
from app.web.deps import db, start_session
from app.web.pages.common import PageController, flash, form_text, layout_context

PASSWORD_PATH = "/account/password"  # app.web.app throttles it with the login attempts


def _field_errors(exc: InvalidInputError) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.errors}


class AccountPages(PageController):
    """``/account``: the signed-in user's profile and password."""

    path = "/account"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, **extra: Any) -> Template:
        async with db(request) as session:
            user = await session.get(User, actor.user_id)
            assert user is not None  # the actor was resolved from this user a moment ago
            org = await session.get(Organization, user.organization_id) if user.organization_id else None
            layout = await layout_context(request, session, actor)
        context = {
            **layout,
            "user": user,
            "org_name": org.name if org else None,
            "has_password": user.password_hash is not None,
            "api_key": actor.is_function_key,
            "field_errors": {},
            "error": None,
            **extra,
        }
        return Template("pages/account.html", context=context, headers={"Cache-Control": "no-store"})

    @get("/")
    async def show(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Profile, the password form and the way to two-factor sign-in."""
        return await self._page(request, actor)

    @post("/password", status_code=303)
    async def change_password(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Change one's own password; the form comes back with the reason when it is refused."""
        if actor.is_function_key:
            raise InvalidInputError.field("api_key", "an API key cannot change a password: sign in with it first")
        data = await request.form()
        try:
            async with db(request) as session:
                user = await passwords.change_own_password(
                    session,
                    actor,
                    form_text(data, "current_password"),
                    form_text(data, "new_password"),
                    form_text(data, "confirm_password"),
                )
        except passwords.WrongPasswordError as exc:
            async with db(request) as session:  # its own transaction: the refused change rolled back
                details = {"reason": "wrong current password", "method": "password_change"}
                await audit.record(
                    session, actor, audit.LOGIN_FAILED, "user", actor.user_id, actor.organization_id, details
                )
            return await self._refused(request, actor, exc)
        except InvalidInputError as exc:
            return await self._refused(request, actor, exc)
        # Every session ended with the old password; this browser signs in again, keeping its organization.
        acting_org = request.session.get("org_id")
        start_session(request, user)
        if acting_org:
            request.session["org_id"] = acting_org
        flash(request, "Password changed. Your other sessions are signed out.")
        return Redirect("/account", status_code=303)

    async def _refused(self, request: Request[Any, Any, Any], actor: Actor, exc: InvalidInputError) -> Template:
        page = await self._page(request, actor, error=str(exc), field_errors=_field_errors(exc))
        page.status_code = 422
        return page


class UserPasswordPages(PageController):
    """``/admin/users/{user_id}/password``: a platform admin sets or generates a user's password."""

    path = "/admin/users/{user_id:str}/password"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, user_id: str, **extra: Any) -> Template:
        actor.require_admin("reset passwords")
        async with db(request) as session:
            target = await UserService(session).get(actor, user_id)
            layout = await layout_context(request, session, actor)
        context = {**layout, "target": target, "generated": None, "error": None, "field_errors": {}, **extra}
        return Template("pages/account_reset.html", context=context, headers={"Cache-Control": "no-store"})

    @get("/")
    async def form(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> Template:
        """The reset form: type a password, or leave it empty to generate one."""
        return await self._page(request, actor, user_id)

    @post("/", status_code=200)
    async def reset(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> Template | Redirect:
        """Set the password; a generated one is shown on this answer only."""
        actor.require_admin("reset passwords")
        data = await request.form()
        try:
            async with db(request) as session:
                user, generated = await passwords.reset_password(
                    session,
                    actor,
                    user_id,
                    form_text(data, "new_password") or None,
                    form_text(data, "confirm_password"),
                )
        except InvalidInputError as exc:
            page = await self._page(request, actor, user_id, error=str(exc), field_errors=_field_errors(exc))
            page.status_code = 422
            return page
        if generated is None:
            flash(request, f"Password of {user.email} set; their sessions are signed out.")
            return Redirect("/admin/users", status_code=303)
        return await self._page(request, actor, user_id, generated=generated)
