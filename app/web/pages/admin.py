"""Administration pages for platform admins: organizations, users, roles.

Permission checks stay in the services (``OrganizationService``, ``UserService``,
``RoleService`` refuse non-admins), so a regular user gets the 403 page from any of these URLs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.errors import ConflictError, InvalidInputError
from app.services.forms.service import FormService
from app.services.identity.organizations import OrganizationService
from app.services.identity.roles import RoleService
from app.services.identity.users import UserService
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context


def _problem(exc: InvalidInputError | ConflictError) -> tuple[str, dict[str, str]]:
    """A summary and per-field messages of a service error (for errors next to fields)."""
    fields = {e["field"]: e["message"] for e in getattr(exc, "errors", [])}
    return str(exc), fields


class OrganizationPages(PageController):
    """``/admin/organizations``: list, create, deactivate and reactivate."""

    path = "/admin/organizations"

    async def _page(
        self, request: Request[Any, Any, Any], actor: Actor, form: dict[str, str] | None = None, error: Any = None
    ) -> Template:
        async with db(request) as session:
            orgs = await OrganizationService(session).list(actor, include_inactive=True)
            layout = await layout_context(request, session, actor)
        message, fields = error if error else (None, {})
        return Template(
            "pages/admin/organizations.html",
            context={**layout, "all_orgs": orgs, "form": form or {}, "error": message, "field_errors": fields},
        )

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Every organization, active or not."""
        actor.require_admin("manage organizations")
        return await self._page(request, actor)

    @post("/", status_code=200)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Create an organization; errors are shown next to the form with the input kept."""
        actor.require_admin("manage organizations")
        data = await request.form()
        form = {"name": form_text(data, "name"), "domain": form_text(data, "domain")}
        try:
            async with db(request) as session:
                org = await OrganizationService(session).create(actor, form["name"], form["domain"] or None)
        except (InvalidInputError, ConflictError) as exc:
            return await self._page(request, actor, form, _problem(exc))
        flash(request, f"Organization {org.name!r} created.")
        return Redirect("/admin/organizations", status_code=303)

    @post("/{org_id:str}/active", status_code=303)
    async def set_active(self, request: Request[Any, Any, Any], actor: Actor, org_id: str) -> Redirect:
        """Deactivate (its users can no longer log in) or reactivate an organization."""
        data = await request.form()
        active = form_text(data, "is_active") == "true"
        async with db(request) as session:
            org = await OrganizationService(session).update(actor, org_id, is_active=active)
        flash(request, f"Organization {org.name!r} {'reactivated' if active else 'deactivated'}.")
        return Redirect("/admin/organizations", status_code=303)


class UserPages(PageController):
    """``/admin/users``: list, create, deactivate and reactivate."""

    path = "/admin/users"

    async def _page(
        self, request: Request[Any, Any, Any], actor: Actor, form: dict[str, Any] | None = None, error: Any = None
    ) -> Template:
        async with db(request) as session:
            users = await UserService(session).list(actor, actor.acting_org_id)
            orgs = await OrganizationService(session).list(actor, include_inactive=True)
            layout = await layout_context(request, session, actor)
        message, fields = error if error else (None, {})
        return Template(
            "pages/admin/users.html",
            context={
                **layout,
                "users": users,
                "org_names": {o.id: o.name for o in orgs},
                "all_orgs": orgs,
                "form": form or {"org_id": actor.acting_org_id or ""},
                "error": message,
                "field_errors": fields,
            },
        )

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Users of the acting organization (all users when acting globally)."""
        actor.require_admin("manage users")
        return await self._page(request, actor)

    @post("/", status_code=200)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Create a user with a password; errors are shown with the input kept (never the password)."""
        actor.require_admin("manage users")
        data = await request.form()
        email, name, org_id = form_text(data, "email"), form_text(data, "name"), form_text(data, "org_id")
        is_superuser = form_text(data, "is_superuser") == "true"
        form = {"email": email, "name": name, "org_id": org_id, "is_superuser": is_superuser}
        try:
            async with db(request) as session:
                user = await UserService(session).create(
                    actor,
                    email,
                    name,
                    is_superuser=is_superuser,
                    org_id=org_id or None,
                    password=form_text(data, "password"),
                )
        except (InvalidInputError, ConflictError) as exc:
            return await self._page(request, actor, form, _problem(exc))
        flash(request, f"User {user.email} created; they can log in now.")
        return Redirect("/admin/users", status_code=303)

    @post("/{user_id:str}/active", status_code=303)
    async def set_active(self, request: Request[Any, Any, Any], actor: Actor, user_id: str) -> Redirect:
        """Deactivate (no more logins) or reactivate a user."""
        data = await request.form()
        active = form_text(data, "is_active") == "true"
        async with db(request) as session:
            user = await UserService(session).update(actor, user_id, is_active=active)
        flash(request, f"User {user.email} {'reactivated' if active else 'deactivated'}.")
        return Redirect("/admin/users", status_code=303)


class RolePages(PageController):
    """``/admin/roles``: roles of the acting organization and their members."""

    path = "/admin/roles"

    async def _page(
        self, request: Request[Any, Any, Any], actor: Actor, form: dict[str, str] | None = None, error: Any = None
    ) -> Template:
        actor.require_admin("manage roles")
        async with db(request) as session:
            roles = await RoleService(session).list(actor) if actor.acting_org_id else []
            layout = await layout_context(request, session, actor)
        message, fields = error if error else (None, {})
        return Template(
            "pages/admin/roles.html",
            context={**layout, "roles": roles, "form": form or {}, "error": message, "field_errors": fields},
        )

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Roles of the acting organization (pick one with the switcher first)."""
        return await self._page(request, actor)

    @post("/", status_code=200)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Create a role in the acting organization."""
        actor.require_admin("manage roles")
        data = await request.form()
        form = {"name": form_text(data, "name"), "description": form_text(data, "description")}
        try:
            async with db(request) as session:
                role = await RoleService(session).create(actor, form["name"], form["description"])
        except (InvalidInputError, ConflictError) as exc:
            return await self._page(request, actor, form, _problem(exc))
        flash(request, f"Role {role.name!r} created.")
        return Redirect(f"/admin/roles/{role.id}", status_code=303)

    @get("/{role_id:str}")
    async def role_page(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> Template:
        """One role: its members, and the organization's other users to add."""
        async with db(request) as session:
            roles = RoleService(session)
            role = await roles.get(actor, role_id)
            member_ids = set(await roles.list_users(actor, role_id))
            # Forms the role may grant: its organization's and the global ones (assign_forms' rule).
            forms = await FormService(session).list(replace(actor, acting_org_id=role.organization_id))
            form_ids = set(await roles.list_forms(actor, role_id))
            users = await UserService(session).list(actor, role.organization_id)
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/admin/role.html",
            context={
                **layout,
                "role": role,
                "members": [u for u in users if u.id in member_ids],
                "candidates": [u for u in users if u.id not in member_ids and u.is_active],
                "forms": forms,
                "assigned_form_ids": form_ids,
            },
        )

    @post("/{role_id:str}/users", status_code=303)
    async def assign(self, request: Request[Any, Any, Any], actor: Actor, role_id: str) -> Redirect:
        """Assign the checked users to the role."""
        data = await request.form()
        user_ids = [v for v in data.getall("user_ids", []) if isinstance(v, str)] if "user_ids" in data else []
        if user_ids:
            async with db(request) as session:
                await RoleService(session).assign_users(actor, role_id, user_ids)
            flash(request, f"{len(user_ids)} user(s) added to the role.")
        else:
            flash(request, "No users were selected.")
        return Redirect(f"/admin/roles/{role_id}", status_code=303)
