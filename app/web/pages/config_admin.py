"""The config and secrets page of platform admins: ``/admin/config``.

Lists the values of one scope (an organization's own values beside the global ones it falls back
to, or only the global ones), and creates, replaces and deletes them with a type: text, whole
number, true/false, JSON, or secret. Secrets are write-only: the page shows a mask, never the
value (the service never returns it outside executions), and replacing one means typing it again.
Every change goes through :class:`ConfigService`, so keys and values are checked exactly as over
the API and the SDK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.config.service import GLOBAL, ConfigService
from app.services.errors import InvalidInputError
from app.services.identity.organizations import OrganizationService
from app.services.secrets import secret_box
from app.settings import Settings
from app.web.deps import db
from app.web.pages.common import PageController, flash, form_text, layout_context
from app.web.pages.json_input import read_json

TYPES = [
    ("string", "Text"),
    ("int", "Whole number"),
    ("bool", "True / false"),
    ("json", "JSON (object, list or decimal number)"),
    ("secret", "Secret (encrypted, never shown again)"),
]


def _service(request: Request[Any, Any, Any], session: Any) -> ConfigService:
    settings: Settings = request.app.state.settings
    return ConfigService(session, lambda: secret_box(settings.secret_key, settings.home))


def parse_value(kind: str, text: str) -> tuple[Any, bool]:
    """The value typed into the page as the chosen type: ``(value, is_secret)``.

    Raises:
        InvalidInputError: The text is not a value of that type (named on the ``value`` field).
    """
    if kind == "secret":
        return text, True
    if kind == "string":
        return text, False
    if kind == "int":
        try:
            return int(text.strip()), False
        except ValueError:
            raise InvalidInputError.field("value", "enter a whole number such as 42") from None
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidInputError.field("value", "enter true or false")
        return lowered == "true", False
    if kind == "json":
        value, problem = read_json(text, "any", '{"retries": 3}')
        if problem:
            raise InvalidInputError.field("value", problem)
        return value, False
    raise InvalidInputError.field("type", f"choose one of {', '.join(k for k, _ in TYPES)}")


def _as_text(entry: Mapping[str, Any]) -> str:
    """A stored value as the page's value box shows it (secrets: nothing)."""
    if entry["is_secret"]:
        return ""
    if entry["type"] == "json":
        return json.dumps(entry["value"], indent=2)
    if entry["type"] == "bool":
        return "true" if entry["value"] else "false"
    return str(entry["value"])


class ConfigPages(PageController):
    """``/admin/config``: config values and secrets per organization or global (platform admins)."""

    path = "/admin/config"

    async def _render(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        scope: str,
        *,
        editing: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        async with db(request) as session:
            entries = await _service(request, session).entries(actor, scope)
            organizations = await OrganizationService(session).list(actor)
            layout = await layout_context(request, session, actor)
        own = [e for e in entries if (e["organization_id"] or GLOBAL) == (scope or GLOBAL)]
        inherited = [e for e in entries if e not in own]
        return Template(
            "pages/admin/config.html",
            context={
                **layout,
                "scope": scope,
                "scope_name": next((o.name for o in organizations if o.id == scope), "Global"),
                "organizations": organizations,
                "own": own,
                "inherited": inherited,
                "types": TYPES,
                "editing": editing or {"key": "", "type": "string", "value": "", "description": "", "is_new": True},
                "errors": errors or {},
            },
            status_code=status_code,
        )

    @staticmethod
    def _scope(actor: Actor, org: str | None) -> str:
        actor.require_admin("manage config values")
        return org or actor.acting_org_id or GLOBAL

    @get("/")
    async def page(
        self, request: Request[Any, Any, Any], actor: Actor, org: str | None = None, key: str | None = None
    ) -> Template:
        """The values of the scope (``org``: an organization id or ``GLOBAL``), and the edit form.

        With ``key``, the form is filled with that value of the scope to replace it (a secret's
        value box stays empty).
        """
        scope = self._scope(actor, org)
        editing = None
        if key is not None:
            async with db(request) as session:
                entries = await _service(request, session).entries(actor, scope)
            found = next((e for e in entries if e["key"] == key and (e["organization_id"] or GLOBAL) == scope), None)
            if found is not None:
                editing = {
                    "key": found["key"],
                    "type": "secret" if found["is_secret"] else found["type"],
                    "value": _as_text(found),
                    "description": found["description"] or "",
                    "is_new": False,
                }
        return await self._render(request, actor, scope, editing=editing)

    @post("/save", status_code=200)
    async def save(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Create or replace a value; errors are shown next to their field with the input kept."""
        form = await request.form()
        scope = self._scope(actor, form_text(form, "org") or None)
        editing: dict[str, Any] = {
            "key": form_text(form, "key"),
            "type": form_text(form, "type", "string"),
            "value": form_text(form, "value"),
            "description": form_text(form, "description"),
            "is_new": form_text(form, "is_new") == "true",
        }
        try:
            value, is_secret = parse_value(editing["type"], editing["value"])
            async with db(request) as session:
                await _service(request, session).set(
                    actor, editing["key"], value, is_secret, editing["description"], org=scope
                )
        except InvalidInputError as exc:
            errors = {str(e.get("field")): str(e.get("message")) for e in exc.errors} or {"key": str(exc)}
            if editing["type"] == "secret":
                editing["value"] = ""  # never sent back to the browser
            return await self._render(request, actor, scope, editing=editing, errors=errors, status_code=422)
        flash(request, f"Saved {editing['key']!r}.")
        return Redirect(f"/admin/config?{urlencode({'org': scope})}", status_code=303)

    @post("/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], actor: Actor) -> Redirect:
        """Delete a value of the scope (a global value the organization fell back to stays)."""
        form = await request.form()
        scope = self._scope(actor, form_text(form, "org") or None)
        key = form_text(form, "key")
        async with db(request) as session:
            existed = await _service(request, session).delete(actor, key, org=scope)
        flash(request, f"Deleted {key!r}." if existed else f"{key!r} was not set here.")
        return Redirect(f"/admin/config?{urlencode({'org': scope})}", status_code=303)


CONFIG_PAGE_HANDLERS: list[ControllerRouterHandler] = [ConfigPages]
