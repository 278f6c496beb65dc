"""``/admin/sign-in`` (platform admins): single sign-on providers, the two-factor policy, SSO-only
organizations and resetting a user's factor. The same services as ``/api/sign-in``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler
from sqlalchemy import select
from sqlmodel import col

from app.models import Organization, User
from app.models.sign_in import UserTotp
from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError, NotFoundError
from app.services.identity import totp
from app.services.identity.sso_providers import (
    CALLBACK_PATH,
    SsoProviderService,
    provider_view,
    set_organization_sso_only,
)
from app.services.identity.totp import TotpService
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context
from app.web.sign_in_flow import box_of, public_url

TEXT_FIELDS = ("slug", "display_name", "kind", "tenant", "issuer", "client_id", "scopes", "default_role")


def provider_body(form: FormMultiDict) -> dict[str, Any]:
    """The API body of a provider form (an empty client secret keeps the stored one)."""
    body: dict[str, Any] = {name: form_text(form, name).strip() or None for name in TEXT_FIELDS if name in form}
    secret = form_text(form, "client_secret")
    if secret:
        body["client_secret"] = secret
    if form_text(form, "clear_client_secret") == "true":
        body["client_secret"] = None
    body["is_active"] = form_text(form, "is_active") == "true"
    body["create_users"] = form_text(form, "create_users") == "true"
    body["organization_id"] = form_text(form, "organization_id") or None
    mapping: dict[str, str] = {}
    for number, line in enumerate(form_text(form, "domain_map").splitlines(), start=1):
        if not line.strip():
            continue
        domain, sep, org = line.partition("=")
        if not sep or not domain.strip() or not org.strip():
            raise InvalidInputError.field("domain_map", f"line {number} must read 'domain = organization'")
        mapping[domain.strip()] = org.strip()
    body["domain_map"] = mapping
    return body


class SignInAdminPages(PageController):
    """``/admin/sign-in``."""

    path = "/admin/sign-in"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, **extra: Any) -> Template:
        actor.require_admin("manage sign-in")
        async with db(request) as session:
            providers = [provider_view(p) for p in await SsoProviderService(session, box_of(request)).list(actor)]
            orgs = list((await session.execute(select(Organization).order_by(col(Organization.name)))).scalars())
            stmt = (
                select(User)
                .join(UserTotp, col(UserTotp.user_id) == col(User.id))
                .where(col(UserTotp.confirmed_at).is_not(None))
                .order_by(col(User.email))
            )
            enrolled = list((await session.execute(stmt)).scalars())
            policy = await totp.get_policy(session)
            layout = await layout_context(request, session, actor)
        names = {o.id: o.name for o in orgs}
        context = {
            **layout,
            "providers": providers,
            "organizations": orgs,
            "org_names": names,
            "enrolled": enrolled,
            "policy": policy,
            "policies": totp.POLICIES,
            "callback_url": public_url(request) + CALLBACK_PATH,
            "error": None,
            **extra,
        }
        return Template("pages/sign_in/admin.html", context=context, status_code=422 if extra.get("error") else 200)

    @get("/")
    async def show(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Providers, the policy, organizations and enrolled users."""
        return await self._page(request, actor)

    @post("/providers", status_code=303)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Add a provider."""
        form = await request.form()
        try:
            async with db(request) as session:
                provider = await SsoProviderService(session, box_of(request)).create(actor, provider_body(form))
        except (InvalidInputError, ConflictError) as exc:
            return await self._page(request, actor, error=str(exc))
        flash(request, f"Added {provider.display_name}.")
        return Redirect("/admin/sign-in", status_code=303)

    @post("/providers/{provider_id:str}", status_code=303)
    async def update(self, request: Request[Any, Any, Any], actor: Actor, provider_id: str) -> Template | Redirect:
        """Change a provider."""
        form = await request.form()
        try:
            async with db(request) as session:
                await SsoProviderService(session, box_of(request)).update(actor, provider_id, provider_body(form))
        except (InvalidInputError, ConflictError) as exc:
            return await self._page(request, actor, error=str(exc))
        flash(request, "Saved.")
        return Redirect("/admin/sign-in", status_code=303)

    @post("/providers/{provider_id:str}/delete", status_code=303)
    async def remove(self, request: Request[Any, Any, Any], actor: Actor, provider_id: str) -> Redirect:
        """Delete a provider."""
        async with db(request) as session:
            await SsoProviderService(session, box_of(request)).delete(actor, provider_id)
        flash(request, "Provider deleted.")
        return Redirect("/admin/sign-in", status_code=303)

    @post("/policy", status_code=303)
    async def policy(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Set who must use a second factor."""
        form = await request.form()
        async with db(request) as session:
            await totp.set_policy(session, actor, form_text(form, "require_totp"))
        flash(request, "Two-factor policy saved.")
        return Redirect("/admin/sign-in", status_code=303)

    @post("/organizations/{org_id:str}", status_code=303)
    async def sso_only(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> Redirect:
        """Make an organization SSO-only, or allow passwords again."""
        form = await request.form()
        async with db(request) as session:
            org = await set_organization_sso_only(session, actor, org_id, form_text(form, "sso_only") == "true")
        flash(request, f"{org.name}: {'single sign-on only' if org.sso_only else 'passwords allowed'}.")
        return Redirect("/admin/sign-in", status_code=303)

    @post("/users/{user_id:str}/totp/reset", status_code=303)
    async def reset(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> Redirect:
        """Remove a user's factor (lost phone)."""
        actor.require_admin("reset two-factor sign-in")
        async with db(request) as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"User {user_id!r} not found.")
            await TotpService(session, box_of(request)).remove(actor, user)
        flash(request, f"Two-factor sign-in of {user.email} was reset.")
        return Redirect("/admin/sign-in", status_code=303)


SIGN_IN_ADMIN_PAGE_HANDLERS: list[ControllerRouterHandler] = [SignInAdminPages]
