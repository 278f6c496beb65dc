"""API keys page: everyone manages their own keys; platform admins see every key.

A new key's secret appears once, in the answer to the POST that created it (never in a
redirect, the session or a URL), with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.errors import InvalidInputError
from app.services.identity.auth import ApiKeyService
from app.services.identity.organizations import OrganizationService
from app.services.workflows.catalogue import WorkflowService
from app.web.api.admin import api_key_view
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context


class ApiKeyPages(PageController):
    """``/api-keys``: create (shown once), list, revoke."""

    path = "/api-keys"

    async def _page(self, request: Request[Any, Any, Any], actor: Actor, **extra: Any) -> Template:
        async with db(request) as session:
            keys = [api_key_view(k) for k in await ApiKeyService(session).list(actor)]
            workflows = [w.name for w in await WorkflowService(session).list(actor)]
            orgs = await OrganizationService(session).list(actor, include_inactive=True) if actor.is_superuser else []
            layout = await layout_context(request, session, actor)
        extra.setdefault("form", {})
        return Template(
            "pages/api_keys.html",
            context={
                **layout,
                "keys": keys,
                "workflow_names": workflows,
                "all_orgs": orgs,
                "org_names": {o.id: o.name for o in orgs},
                "error": None,
                "field_errors": {},
                "new_key": None,
                **extra,
            },
            headers={"Cache-Control": "no-store"},
        )

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Your keys (admins: all keys), and the form to create one."""
        return await self._page(request, actor)

    @post("/", status_code=200)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Create a key and show its secret this once."""
        data = await request.form()
        form = {
            "name": form_text(data, "name"),
            "organization_id": form_text(data, "organization_id"),
            "workflow_id": form_text(data, "workflow_id"),
        }
        try:
            async with db(request) as session:
                key, secret = await ApiKeyService(session).create(
                    actor, form["name"], form["organization_id"] or None, form["workflow_id"] or None
                )
        except InvalidInputError as exc:
            fields = {e["field"]: e["message"] for e in exc.errors}
            return await self._page(request, actor, form=form, error=str(exc), field_errors=fields)
        return await self._page(request, actor, new_key={"name": key.name, "secret": secret})

    @post("/{key_id:str}/revoke", status_code=303)
    async def revoke(self, request: Request[Any, Any, Any], actor: Actor, key_id: str) -> Redirect:
        """Revoke a key: it stops working at once."""
        async with db(request) as session:
            key = await ApiKeyService(session).revoke(actor, key_id)
        flash(request, f"API key {key.name!r} revoked.")
        return Redirect("/api-keys", status_code=303)
