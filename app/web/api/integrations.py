"""Integrations: ``/integrations`` under both the JSON API and the SDK API.

* ``GET /integrations/{name}?org_id=`` → ``IntegrationData`` (``bifrost.integrations.get``): merged
  config and OAuth credentials of the acting organization (another one: platform admins only).
  Executions get secrets and tokens in clear, refreshed first when they expire soon; other
  callers get them masked. A broken connection or a failed refresh answers 502 with
  ``X-Bifrost-Error: integration`` (the SDK raises ``bifrost.IntegrationError``).
* Platform admins: ``GET/POST /integrations``, ``GET /integrations/{name}/definition``,
  ``PATCH/DELETE /integrations/{name}``; mappings ``GET /integrations/{name}/mappings``,
  ``GET/PUT/DELETE /integrations/{name}/mappings/{org}``; connections
  ``POST .../connect`` (client credentials: connects; authorization code: returns the
  ``authorize_url`` to open in a browser logged in as the same user), ``POST .../refresh``,
  ``DELETE .../connection``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, cast

from litestar import Controller, MediaType, Request, Response, delete, get, patch, post, put
from litestar.types import ControllerRouterHandler

from app.services.actor import Actor
from app.services.integrations.connect import (
    connect_client_credentials,
    disconnect,
    refresh_now,
    start_authorization,
)
from app.services.integrations.oauth_client import FLOW_AUTHORIZATION_CODE, OAuthFlowError
from app.services.integrations.oauth_tokens import IntegrationUnavailableError, TokenManager
from app.services.integrations.service import IntegrationService, integration_data
from app.services.integrations.views import (
    AuthorizationStart,
    Connection,
    ConnectionStatus,
    IntegrationBody,
    IntegrationData,
    IntegrationDefinition,
    MappingBody,
    MappingView,
)
from app.services.secrets import SecretBox, SecretKeyError, secret_box
from app.settings import Settings
from app.web.api.config import secret_key_error_handler
from app.web.api.schemas import Deleted, documented_body
from app.web.deps import db, get_platform

log = logging.getLogger(__name__)

CALLBACK_PATH = "/integrations/oauth/callback"


def integration_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The provider side failed (broken connection, refused or failed exchange): 502, SDK ``IntegrationError``."""
    return Response(
        {"status_code": 502, "detail": str(exc)},
        status_code=502,
        media_type=MediaType.JSON,
        headers={"X-Bifrost-Error": "integration"},
    )


def box_of(request: Request[Any, Any, Any]) -> Any:
    """A function returning the server's :class:`SecretBox`."""
    settings: Settings = request.app.state.settings

    def box() -> SecretBox:
        return secret_box(settings.secret_key, settings.home)

    return box


def token_manager(request: Request[Any, Any, Any]) -> TokenManager:
    """The platform's :class:`TokenManager` (configured leeway and provider timeout)."""
    return get_platform(request.app.state).token_refresher.manager


def callback_url(request: Request[Any, Any, Any]) -> str:
    """The redirect URI to register at providers: ``BIFROST_PUBLIC_URL`` (else this request's origin) + callback."""
    settings: Settings = request.app.state.settings
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK_PATH


class IntegrationController(Controller):
    """Integration definitions, per-organization mappings and connections, and ``integrations.get``."""

    path = "/integrations"
    tags = ["integrations"]
    exception_handlers = {
        SecretKeyError: secret_key_error_handler,
        IntegrationUnavailableError: integration_error_handler,
        OAuthFlowError: integration_error_handler,
    }

    @get("/")
    async def list_integrations(self, request: Request[Any, Any, Any], actor: Actor) -> list[IntegrationDefinition]:
        """Every integration definition (platform admins)."""
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            return [service.definition_view(i) for i in await service.list_definitions(actor)]

    @post("/", status_code=201)
    async def create_integration(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(IntegrationBody, closed=True)],
    ) -> IntegrationDefinition:
        """Define an integration (platform admins)."""
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            return service.definition_view(await service.create(actor, data))

    @get("/{name:str}")
    async def get_integration(
        self, request: Request[Any, Any, Any], actor: Actor, name: str, org_id: str | None = None
    ) -> IntegrationData:
        """``integrations.get``: config and OAuth credentials in the acting organization (404 when not configured)."""
        platform = get_platform(request.app.state)
        return await integration_data(platform.sessions, box_of(request), token_manager(request), actor, name, org_id)

    @get("/{name:str}/definition")
    async def get_definition(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> IntegrationDefinition:
        """One integration's definition (platform admins; the client secret is never returned)."""
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            return service.definition_view(await service.get_definition(actor, name))

    @patch("/{name:str}")
    async def update_integration(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        data: Annotated[dict[str, Any], documented_body(IntegrationBody, closed=True)],
    ) -> IntegrationDefinition:
        """Change an integration's definition (platform admins)."""
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            return service.definition_view(await service.update(actor, name, data))

    @delete("/{name:str}", status_code=200)
    async def delete_integration(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> Deleted:
        """Delete an integration with every mapping and connection (platform admins)."""
        async with db(request) as session:
            return {"deleted": await IntegrationService(session, box_of(request)).delete(actor, name)}

    @get("/{name:str}/mappings")
    async def list_mappings(self, request: Request[Any, Any, Any], actor: Actor, name: str) -> list[MappingView]:
        """Every organization's mapping with its connection status (platform admins)."""
        async with db(request) as session:
            return await IntegrationService(session, box_of(request)).mappings(actor, name)

    @get("/{name:str}/mappings/{org:str}")
    async def get_mapping(self, request: Request[Any, Any, Any], actor: Actor, name: str, org: str) -> MappingView:
        """One organization's mapping (organization by id or name; platform admins)."""
        async with db(request) as session:
            service = IntegrationService(session, box_of(request))
            integration, mapping, organization = await service.find_mapping(actor, name, org)
            return service.mapping_view(integration, mapping, organization.name, await service.connection_of(mapping))

    @put("/{name:str}/mappings/{org:str}")
    async def set_mapping(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        org: str,
        data: Annotated[dict[str, Any], documented_body(MappingBody, closed=True)],
    ) -> MappingView:
        """Create or change an organization's mapping: ``{"entity_id", "entity_name", "config"}`` (platform admins)."""
        async with db(request) as session:
            return await IntegrationService(session, box_of(request)).set_mapping(actor, name, org, data)

    @delete("/{name:str}/mappings/{org:str}", status_code=200)
    async def delete_mapping(self, request: Request[Any, Any, Any], actor: Actor, name: str, org: str) -> Deleted:
        """Remove an organization's mapping and its tokens (platform admins)."""
        async with db(request) as session:
            return {"deleted": await IntegrationService(session, box_of(request)).delete_mapping(actor, name, org)}

    @post("/{name:str}/mappings/{org:str}/connect", status_code=200)
    async def connect(
        self, request: Request[Any, Any, Any], actor: Actor, name: str, org: str
    ) -> Connection | AuthorizationStart:
        """Connect the mapping: client credentials now, or the authorize URL for the code flow (platform admins)."""
        settings: Settings = request.app.state.settings
        async with db(request) as session:
            definition = await IntegrationService(session, box_of(request)).get_definition(actor, name)
            if definition.oauth_flow == FLOW_AUTHORIZATION_CODE:
                url = await start_authorization(session, box_of(request), actor, name, org, callback_url(request))
                return {"authorize_url": url, "redirect_uri": callback_url(request)}
        connected = await connect_client_credentials(
            get_platform(request.app.state).sessions,
            box_of(request),
            actor,
            name,
            org,
            settings.integration_provider_timeout_seconds,
        )
        return {"connection": cast(ConnectionStatus, connected.connection)}

    @post("/{name:str}/mappings/{org:str}/refresh", status_code=200)
    async def refresh(self, request: Request[Any, Any, Any], actor: Actor, name: str, org: str) -> Connection:
        """Refresh the mapping's token now (platform admins)."""
        platform = get_platform(request.app.state)
        view = await refresh_now(platform.sessions, box_of(request), token_manager(request), actor, name, org)
        return {"connection": cast(ConnectionStatus, view)}

    @delete("/{name:str}/mappings/{org:str}/connection", status_code=200)
    async def disconnect(self, request: Request[Any, Any, Any], actor: Actor, name: str, org: str) -> Deleted:
        """Forget the mapping's tokens (platform admins)."""
        async with db(request) as session:
            return {"deleted": await disconnect(session, box_of(request), actor, name, org)}


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [IntegrationController]
