"""Integration pages (platform admins): define integrations, map organizations, connect, see token status.

* ``/integrations``: every integration and a form to define one.
* ``/integrations/{id}``: the definition (OAuth settings, config schema as JSON, defaults), and one
  row per mapped organization with its entity, config values, connection status (scopes, expiry,
  last refresh, refresh failures) and Connect / Refresh / Disconnect buttons.
* ``/integrations/oauth/callback``: where providers send the browser back after consent. Any
  failure (wrong or replayed state, provider error, token response without the expected fields)
  shows a page that says what went wrong; nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Redirect, Template

from app.services.actor import Actor
from app.services.config.service import SECRET_MASK
from app.services.errors import DomainError, InvalidInputError, NotFoundError
from app.services.integrations.connect import (
    complete_authorization,
    connect_client_credentials,
    disconnect,
    refresh_now,
    start_authorization,
)
from app.services.integrations.oauth_client import FLOW_AUTHORIZATION_CODE, FLOWS, OAuthFlowError
from app.services.integrations.service import IntegrationService
from app.settings import Settings
from app.web.api.integrations import box_of, callback_url, token_manager
from app.web.deps import db, get_platform
from app.web.pages.common import PageController, flash, form_text, layout_context
from app.web.pages.json_input import read_json

DEFINITION_FORM_FIELDS = (
    "name",
    "description",
    "oauth_flow",
    "authorization_url",
    "token_url",
    "client_id",
    "token_auth_method",
    "scopes",
)


def _require(actor: Actor) -> None:
    actor.require_admin("manage integrations")


def _definition_body(form: FormMultiDict) -> dict[str, Any]:
    """The API body of a definition form (an empty client secret keeps the stored one)."""
    body: dict[str, Any] = {name: form_text(form, name) for name in DEFINITION_FORM_FIELDS}
    secret = form_text(form, "client_secret")
    if secret:
        body["client_secret"] = secret
    if form_text(form, "clear_client_secret") == "true":
        body["client_secret"] = None
    schema_text = form_text(form, "config_schema").strip()
    example = '[{"key": "tenant", "type": "string"}]'
    schema, problem = read_json(schema_text, "array", example) if schema_text else ([], None)
    if problem:
        raise InvalidInputError.field("config_schema", f"is {problem}")
    body["config_schema"] = schema
    return body


def _config_from_form(schema: list[dict[str, Any]], form: FormMultiDict) -> dict[str, Any]:
    """``config.<key>`` fields as typed values; empty means "no value here" (a secret left empty is kept)."""
    values: dict[str, Any] = {}
    for field in schema:
        key = field["key"]
        name = f"config.{key}"
        if name not in form:
            continue
        text = form_text(form, name).strip() if field["type"] != "string" else form_text(form, name)
        if field["secret"]:
            if text:
                values[key] = text
            continue
        if text == "":
            values[key] = None
        elif field["type"] == "int":
            try:
                values[key] = int(text)
            except ValueError:
                raise InvalidInputError.field(name, "must be a whole number") from None
        elif field["type"] == "bool":
            values[key] = text == "true"
        elif field["type"] == "json":
            values[key], problem = read_json(text, "any")
            if problem:
                raise InvalidInputError.field(name, problem)
        else:
            values[key] = text
    return values


class IntegrationPages(PageController):
    """``/integrations``: definitions, mappings and connections."""

    path = "/integrations"

    async def _list_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        *,
        error: str | None = None,
        form: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Template:
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            integrations = []
            for integration in await service.list_definitions(actor):
                rows = await service.mapping_rows(integration)
                integrations.append(
                    {
                        **service.definition_view(integration),
                        "mapped": len(rows),
                        "connected": sum(1 for _, _, c in rows if c is not None and c.status == "connected"),
                        "broken": sum(1 for _, _, c in rows if c is not None and c.status == "broken"),
                    }
                )
            layout = await layout_context(request, session, actor)
        return Template(
            "pages/integrations.html",
            context={
                **layout,
                "integrations": integrations,
                "flows": FLOWS,
                "error": error,
                "form": form or {},
                "callback_url": callback_url(request),
            },
            status_code=status_code,
        )

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], actor: Actor) -> Template:
        """Every integration with how many organizations are mapped, connected and broken."""
        _require(actor)
        return await self._list_page(request, actor)

    @post("/", status_code=303)
    async def create(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Define an integration from the form; errors re-show the form with the reason."""
        _require(actor)
        form = await request.form()
        try:
            body = _definition_body(form)
            async with db(request) as session:
                created = await IntegrationService(session, box_of(request)).create(actor, body)
        except DomainError as exc:
            values = {name: form_text(form, name) for name in (*DEFINITION_FORM_FIELDS, "config_schema")}
            return await self._list_page(request, actor, error=str(exc), form=values, status_code=422)
        flash(request, f"Integration {created.name!r} created. Map it to organizations below.")
        return Redirect(f"/integrations/{created.id}", status_code=303)

    @get("/oauth/callback")
    async def oauth_callback(self, request: Request[Any, Any, Any], actor: Actor) -> Template | Redirect:
        """Where the provider sends the browser back: store the tokens, or say clearly why not."""
        settings: Settings = request.app.state.settings
        params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        try:
            connected = await complete_authorization(
                get_platform(request.app.state).sessions,
                box_of(request),
                actor,
                params,
                settings.integration_provider_timeout_seconds,
            )
        except DomainError as exc:
            async with db(request) as session:
                layout = await layout_context(request, session, actor)
            return Template(
                "pages/integrations_callback.html", context={**layout, "message": str(exc)}, status_code=400
            )
        flash(request, f"{connected.integration_name} is connected for {connected.organization_name}.")
        return Redirect(f"/integrations/{connected.integration_id}", status_code=303)

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        integration_id: str,
        *,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            integration = await service.get_definition(actor, integration_id)
            rows = await service.mapping_rows(integration)
            mappings = [service.mapping_view(integration, m, name, c) for m, name, c in rows]
            layout = await layout_context(request, session, actor)
            definition = service.definition_view(integration)
        mapped = {m["organization_id"] for m in mappings}
        return Template(
            "pages/integrations_detail.html",
            context={
                **layout,
                "integration": definition,
                "schema_json": json.dumps(definition["config_schema"], indent=2),
                "mappings": mappings,
                "unmapped_orgs": [o for o in layout.get("orgs", []) if o.id not in mapped],
                "flows": FLOWS,
                "errors": errors or {},
                "secret_mask": SECRET_MASK,
                "callback_url": callback_url(request),
            },
            status_code=status_code,
        )

    @get("/{integration_id:str}")
    async def detail(self, request: Request[Any, Any, Any], actor: Actor, integration_id: str) -> Template:
        """One integration: definition, defaults, and every organization's mapping and connection."""
        _require(actor)
        return await self._detail(request, actor, integration_id)

    async def _save(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str, where: str, action: Any
    ) -> Template | Redirect:
        """Run ``action(session, service, form)``; a domain error re-shows the page with it next to ``where``."""
        _require(actor)
        form = await request.form()
        try:
            async with db(request) as session:
                message = await action(session, IntegrationService(session, box_of(request)), form)
        except (InvalidInputError, OAuthFlowError) as exc:
            return await self._detail(request, actor, integration_id, errors={where: str(exc)}, status_code=422)
        except DomainError as exc:
            if isinstance(exc, NotFoundError):
                raise
            return await self._detail(request, actor, integration_id, errors={where: str(exc)}, status_code=409)
        flash(request, message)
        return Redirect(f"/integrations/{integration_id}#{where}", status_code=303)

    @post("/{integration_id:str}", status_code=303)
    async def update(self, request: Request[Any, Any, Any], actor: Actor, integration_id: str) -> Template | Redirect:
        """Save the definition form."""

        async def action(session: Any, service: IntegrationService, form: FormMultiDict) -> str:
            updated = await service.update(actor, integration_id, _definition_body(form))
            return f"Integration {updated.name!r} saved."

        return await self._save(request, actor, integration_id, "definition", action)

    @post("/{integration_id:str}/defaults", status_code=303)
    async def save_defaults(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str
    ) -> Template | Redirect:
        """Save the global default config values."""

        async def action(session: Any, service: IntegrationService, form: FormMultiDict) -> str:
            integration = await service.get_definition(actor, integration_id)
            values = _config_from_form(integration.config_schema, form)
            await service.update(actor, integration_id, {"config_defaults": values})
            return "Default values saved."

        return await self._save(request, actor, integration_id, "defaults", action)

    @post("/{integration_id:str}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], actor: Actor, integration_id: str) -> Redirect:
        """Delete the integration with every mapping and connection."""
        _require(actor)
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            name = (await service.get_definition(actor, integration_id)).name
            await service.delete(actor, integration_id)
        flash(request, f"Integration {name!r} deleted.")
        return Redirect("/integrations", status_code=303)

    @post("/{integration_id:str}/mappings", status_code=303)
    async def save_mapping(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str
    ) -> Template | Redirect:
        """Create or change one organization's mapping (entity id and name, config values)."""
        form = await request.form()
        org_id = form_text(form, "org_id")

        async def action(session: Any, service: IntegrationService, form: FormMultiDict) -> str:
            if not org_id:
                raise InvalidInputError.field("org_id", "choose an organization")
            integration = await service.get_definition(actor, integration_id)
            body: dict[str, Any] = {
                "entity_id": form_text(form, "entity_id"),
                "entity_name": form_text(form, "entity_name"),
                "config": _config_from_form(integration.config_schema, form),
            }
            view = await service.set_mapping(actor, integration_id, org_id, body)
            return f"Mapping for {view['organization_name']} saved."

        # Errors go next to the form they came from: the "add an organization" form or the organization's own.
        where = f"org-{org_id}" if org_id and form_text(form, "new") != "1" else "new-mapping"
        return await self._save(request, actor, integration_id, where, action)

    @post("/{integration_id:str}/mappings/{org_id:str}/delete", status_code=303)
    async def delete_mapping(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str, org_id: str
    ) -> Redirect:
        """Remove one organization's mapping and its tokens."""
        _require(actor)
        async with db(request) as session:
            await IntegrationService(session, box_of(request)).delete_mapping(actor, integration_id, org_id)
        flash(request, "Mapping removed.")
        return Redirect(f"/integrations/{integration_id}", status_code=303)

    @post("/{integration_id:str}/mappings/{org_id:str}/connect", status_code=303)
    async def connect(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str, org_id: str
    ) -> Template | Redirect:
        """Authorization code: off to the provider. Client credentials: get a token now."""
        _require(actor)
        settings: Settings = request.app.state.settings
        try:
            async with db(request) as session:
                definition = await IntegrationService(session, box_of(request)).get_definition(actor, integration_id)
                if definition.oauth_flow == FLOW_AUTHORIZATION_CODE:
                    url = await start_authorization(
                        session, box_of(request), actor, integration_id, org_id, callback_url(request)
                    )
                    return Redirect(url, status_code=303)
            connected = await connect_client_credentials(
                get_platform(request.app.state).sessions,
                box_of(request),
                actor,
                integration_id,
                org_id,
                settings.integration_provider_timeout_seconds,
            )
        except (InvalidInputError, OAuthFlowError) as exc:
            return await self._detail(
                request, actor, integration_id, errors={f"org-{org_id}": f"Not connected: {exc}"}, status_code=422
            )
        flash(request, f"{connected.integration_name} is connected for {connected.organization_name}.")
        return Redirect(f"/integrations/{integration_id}#org-{org_id}", status_code=303)

    @post("/{integration_id:str}/mappings/{org_id:str}/refresh", status_code=303)
    async def refresh(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str, org_id: str
    ) -> Template | Redirect:
        """Refresh the token now; a failure is shown next to the organization."""
        _require(actor)
        platform = get_platform(request.app.state)
        try:
            await refresh_now(platform.sessions, box_of(request), token_manager(request), actor, integration_id, org_id)
        except DomainError as exc:
            if isinstance(exc, NotFoundError):
                raise
            return await self._detail(
                request, actor, integration_id, errors={f"org-{org_id}": f"Refresh failed: {exc}"}, status_code=502
            )
        flash(request, "Token refreshed.")
        return Redirect(f"/integrations/{integration_id}#org-{org_id}", status_code=303)

    @post("/{integration_id:str}/mappings/{org_id:str}/disconnect", status_code=303)
    async def disconnect(
        self, request: Request[Any, Any, Any], actor: Actor, integration_id: str, org_id: str
    ) -> Redirect:
        """Forget the organization's tokens."""
        _require(actor)
        async with db(request) as session:
            await disconnect(session, box_of(request), actor, integration_id, org_id)
        flash(request, "Disconnected: the tokens were deleted.")
        return Redirect(f"/integrations/{integration_id}#org-{org_id}", status_code=303)


INTEGRATION_PAGE_HANDLERS = [IntegrationPages]
