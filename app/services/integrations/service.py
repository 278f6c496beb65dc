"""Integrations: definitions (platform admins), per-organization mappings, and ``integrations.get``.

* A definition holds the OAuth settings (flow, URLs, client id, encrypted client secret,
  scopes) and the config schema with global defaults. Only platform admins create, change,
  map or connect integrations.
* A mapping ties an integration to one organization: the provider's ``entity_id`` (tenant or
  company id, filled into ``{entity_id}`` in the URLs), ``entity_name`` and config values that
  override the defaults key by key. Each mapping has at most one OAuth connection
  (:mod:`app.services.integrations.oauth_tokens`).
* ``integrations.get(name, org_id=None)`` (:func:`integration_data`) works in the caller's
  organization; only platform admins may name another one. A running execution gets the merged
  config with secrets and the OAuth tokens in clear (remembered for redaction), refreshed first
  when they expire soon; everyone else sees secrets and tokens masked, as with ``config.get``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.models.base import utcnow
from app.models.integration import Integration, IntegrationConnection, IntegrationMapping
from app.models.organization import Organization
from app.services import redaction
from app.services.actor import Actor
from app.services.config.service import SECRET_MASK
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    optional_text,
    reject_unknown_fields,
)
from app.services.identity.organizations import OrganizationService
from app.services.integrations import config as integrations_config
from app.services.integrations.oauth_client import AUTH_METHODS, FLOW_AUTHORIZATION_CODE, FLOW_NONE, FLOWS
from app.services.integrations.oauth_tokens import TokenManager
from app.services.integrations.views import (
    ConnectionStatus,
    IntegrationData,
    IntegrationDefinition,
    MappingView,
    OAuthCredentials,
)
from app.services.secrets import SecretBox

MAX_NAME_LENGTH = 100
# Names are one URL path segment: no "/", no spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
MAX_URL_LENGTH = 2000
DEFINITION_FIELDS = frozenset(
    {
        "name",
        "description",
        "oauth_flow",
        "authorization_url",
        "token_url",
        "client_id",
        "client_secret",
        "token_auth_method",
        "scopes",
        "config_schema",
        "config_defaults",
    }
)
MAPPING_FIELDS = frozenset({"entity_id", "entity_name", "config"})


def validate_name(name: Any) -> str:
    """``name`` if it is a valid integration name; InvalidInputError naming the problem otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError.field("name", "is required")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError.field(
            "name", f"must be at most {MAX_NAME_LENGTH} letters, digits and _ . - (no spaces or slashes)"
        )
    return name


def storable(text: str, field: str) -> str:
    """``text`` if a database can store it: no NUL (Postgres refuses it), valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise InvalidInputError.field(field, "must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError.field(field, "must be valid Unicode text") from None
    return text


def _url(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        raise InvalidInputError.field(field, f"must be a URL of at most {MAX_URL_LENGTH} characters")
    value = storable(value.strip(), field)
    probe = value.replace("{entity_id}", "entity")
    try:
        parts = urlsplit(probe)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError.field(field, "must be an absolute http(s) URL ({entity_id} may appear in it)")
    if "{" in probe or "}" in probe or any(c.isspace() or ord(c) < 32 for c in probe):
        raise InvalidInputError.field(field, "may contain only the placeholder {entity_id}, and no spaces")
    return value


def _scopes(value: Any) -> str:
    if value is None:
        return ""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(
        isinstance(s, str) and s and not any(c.isspace() or ord(c) < 32 for c in s) for s in items
    ):
        raise InvalidInputError.field("scopes", "must be a list of scopes (or one space-separated string)")
    text = storable(" ".join(dict.fromkeys(items)), "scopes")
    if len(text) > 2000:
        raise InvalidInputError.field("scopes", "must be at most 2000 characters in all")
    return text


def _short_text(value: Any, field: str, max_length: int) -> str | None:
    text = optional_text(value, field, max_length)
    if text is not None and any(ord(c) < 32 for c in text):
        raise InvalidInputError.field(field, "must not contain control characters")
    return storable(text, field) if text is not None else None


def _long_text(value: Any, field: str, max_length: int) -> str | None:
    text = optional_text(value, field, max_length)
    return storable(text, field) if text is not None else None


def connection_view(connection: IntegrationConnection | None) -> dict[str, Any] | None:
    """Status of a connection for pages and the API (never its tokens)."""
    if connection is None:
        return None
    return {
        "status": connection.status,
        "token_type": connection.token_type,
        "scopes": connection.scopes.split(),
        "expires_at": connection.expires_at.isoformat() if connection.expires_at else None,
        "has_refresh_token": connection.refresh_token is not None,
        "connected_at": connection.connected_at.isoformat(),
        "last_refreshed_at": connection.last_refreshed_at.isoformat() if connection.last_refreshed_at else None,
        "refresh_count": connection.refresh_count,
        "last_error": connection.last_error,
        "last_error_at": connection.last_error_at.isoformat() if connection.last_error_at else None,
    }


@dataclass(frozen=True)
class Lookup:
    """What ``integrations.get`` found in one transaction."""

    integration: Integration
    mapping: IntegrationMapping
    connection: IntegrationConnection | None
    organization_name: str


class IntegrationService:
    """Definitions and mappings, in one transaction.

    Args:
        session: The transaction.
        secret_box: Returns the :class:`SecretBox` (only called when a secret is read or written).
    """

    def __init__(self, session: AsyncSession, secret_box: Callable[[], SecretBox]) -> None:
        self.session = session
        self._secret_box = secret_box

    # ----- definitions ------------------------------------------------------------------------------
    async def list_definitions(self, actor: Actor) -> builtins.list[Integration]:
        """Every integration, by name (platform admins)."""
        actor.require_admin("manage integrations")
        return list((await self.session.execute(select(Integration).order_by(col(Integration.name)))).scalars())

    async def get_definition(self, actor: Actor, ref: str) -> Integration:
        """One integration by id or name (platform admins).

        Raises:
            NotFoundError: No such integration.
        """
        actor.require_admin("manage integrations")
        return await self._find(ref)

    async def _find(self, ref: str) -> Integration:
        if not isinstance(ref, str) or not ref or len(ref) > 200 or "\x00" in ref:
            raise NotFoundError(f"Integration {ref!r} not found.")
        found = await self.session.get(Integration, ref)
        if found is None:
            stmt = select(Integration).where(col(Integration.name) == ref)
            found = (await self.session.execute(stmt)).scalars().first()
        if found is None:
            raise NotFoundError(f"Integration {ref!r} not found.")
        return found

    async def create(self, actor: Actor, body: Any) -> Integration:
        """Define an integration from a JSON body (see :data:`DEFINITION_FIELDS`).

        Raises:
            InvalidInputError: A bad field (named).
            ConflictError: The name is taken.
        """
        actor.require_admin("manage integrations")
        if not isinstance(body, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(body, DEFINITION_FIELDS)
        name = validate_name(body.get("name"))
        await self._require_free(name)
        integration = Integration(name=name)
        self._apply(integration, body, creating=True)
        integration.updated_by = actor.user_id
        self.session.add(integration)
        await self.session.flush()
        return integration

    async def update(self, actor: Actor, ref: str, body: Any) -> Integration:
        """Change some fields of an integration (absent fields stay; ``client_secret`` null removes it).

        A schema change drops the stored values (defaults and every organization's) of keys that
        were removed or changed type or secrecy.
        """
        actor.require_admin("manage integrations")
        integration = await self._find(ref)
        if not isinstance(body, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(body, DEFINITION_FIELDS)
        if "name" in body:
            name = validate_name(body["name"])
            if name != integration.name:
                await self._require_free(name)
                integration.name = name
        old_schema = list(integration.config_schema)
        self._apply(integration, body, creating=False)
        if "config_schema" in body:
            mappings = (
                await self.session.execute(
                    select(IntegrationMapping).where(col(IntegrationMapping.integration_id) == integration.id)
                )
            ).scalars()
            for mapping in mappings:
                mapping.config_values = integrations_config.prune_values(
                    old_schema, integration.config_schema, mapping.config_values
                )
        integration.updated_by, integration.updated_at = actor.user_id, utcnow()
        await self.session.flush()
        return integration

    async def _require_free(self, name: str) -> None:
        stmt = select(col(Integration.id)).where(col(Integration.name) == name)
        if (await self.session.execute(stmt)).first() is not None:
            raise ConflictError(f"An integration named {name!r} already exists.")

    def _apply(self, integration: Integration, body: dict[str, Any], *, creating: bool) -> None:
        """Check and copy the definition fields of ``body`` (all of them when creating)."""
        if "description" in body or creating:
            integration.description = _long_text(body.get("description"), "description", 2000)
        if "oauth_flow" in body or creating:
            flow = body.get("oauth_flow") or FLOW_NONE
            if flow not in FLOWS:
                raise InvalidInputError.field("oauth_flow", f"must be one of {', '.join(FLOWS)}")
            integration.oauth_flow = flow
        for field in ("authorization_url", "token_url"):
            if field in body or creating:
                setattr(integration, field, _url(body.get(field), field))
        if "client_id" in body or creating:
            integration.client_id = _short_text(body.get("client_id"), "client_id", 500)
        if "client_secret" in body:
            secret = body["client_secret"]
            if secret is None or secret == "":
                integration.client_secret = None
            elif secret != SECRET_MASK:
                if not isinstance(secret, str) or "\x00" in secret or len(secret) > 4000:
                    raise InvalidInputError.field("client_secret", "must be text of at most 4000 characters")
                integration.client_secret = self._secret_box().encrypt(storable(secret, "client_secret"))
        if "token_auth_method" in body or creating:
            method = body.get("token_auth_method") or "client_secret_basic"
            if method not in AUTH_METHODS:
                raise InvalidInputError.field("token_auth_method", f"must be one of {', '.join(AUTH_METHODS)}")
            integration.token_auth_method = method
        if "scopes" in body or creating:
            integration.scopes = _scopes(body.get("scopes"))
        if "config_schema" in body or creating:
            schema = integrations_config.parse_schema(body.get("config_schema"))
            integration.config_defaults = integrations_config.prune_values(
                integration.config_schema or [], schema, integration.config_defaults or {}
            )
            integration.config_schema = schema
        if "config_defaults" in body:
            integration.config_defaults = integrations_config.merge_values(
                integration.config_schema, integration.config_defaults, body["config_defaults"], self._secret_box(),
                "config_defaults",
            )  # fmt: skip
        self._check_flow(integration)

    @staticmethod
    def _check_flow(integration: Integration) -> None:
        if integration.oauth_flow == FLOW_NONE:
            return
        needed = ["token_url", "client_id"]
        if integration.oauth_flow == FLOW_AUTHORIZATION_CODE:
            needed.insert(0, "authorization_url")
        for field in needed:
            if not getattr(integration, field):
                raise InvalidInputError.field(field, f"is required for the {integration.oauth_flow} flow")

    async def delete(self, actor: Actor, ref: str) -> bool:
        """Delete an integration with its mappings and connections."""
        actor.require_admin("manage integrations")
        integration = await self._find(ref)
        await self.session.delete(integration)
        await self.session.flush()
        return True

    def definition_view(self, integration: Integration) -> IntegrationDefinition:
        """An integration for pages and the API: the client secret never, secret defaults masked."""
        defaults, _ = integrations_config.reveal_values(
            integration.config_schema, integration.config_defaults, self._secret_box(), False, integration.name
        )
        return {
            "id": integration.id,
            "name": integration.name,
            "description": integration.description,
            "oauth_flow": integration.oauth_flow,
            "authorization_url": integration.authorization_url,
            "token_url": integration.token_url,
            "client_id": integration.client_id,
            "has_client_secret": integration.client_secret is not None,
            "token_auth_method": integration.token_auth_method,
            "scopes": integration.scopes.split(),
            "config_schema": integration.config_schema,
            "config_defaults": defaults,
            "created_at": integration.created_at.isoformat(),
            "updated_at": integration.updated_at.isoformat(),
        }

    # ----- mappings ---------------------------------------------------------------------------------
    async def organization(self, actor: Actor, org: str) -> Organization:
        """An organization by id or name, for mapping routes (platform admins).

        Raises:
            NotFoundError: No such organization.
        """
        actor.require_admin("manage integrations")
        found = (
            None if not org or len(org) > 200 or "\x00" in org else await OrganizationService(self.session).find(org)
        )
        if found is None:
            raise NotFoundError(f"Organization {org!r} not found.")
        return found

    async def mapping_rows(
        self, integration: Integration
    ) -> builtins.list[tuple[IntegrationMapping, str, IntegrationConnection | None]]:
        """Every mapping of ``integration`` with its organization's name and its connection, by name."""
        stmt = (
            select(IntegrationMapping, col(Organization.name), IntegrationConnection)
            .join(Organization, col(Organization.id) == col(IntegrationMapping.organization_id))
            .outerjoin(IntegrationConnection, col(IntegrationConnection.mapping_id) == col(IntegrationMapping.id))
            .where(col(IntegrationMapping.integration_id) == integration.id)
            .order_by(col(Organization.name))
        )
        return [(row[0], row[1], row[2]) for row in (await self.session.execute(stmt)).all()]

    async def mappings(self, actor: Actor, ref: str) -> builtins.list[MappingView]:
        """Views of every mapping of an integration (platform admins)."""
        integration = await self.get_definition(actor, ref)
        return [self.mapping_view(integration, m, name, c) for m, name, c in await self.mapping_rows(integration)]

    def mapping_view(
        self,
        integration: Integration,
        mapping: IntegrationMapping,
        organization_name: str,
        connection: IntegrationConnection | None,
    ) -> MappingView:
        """A mapping for pages and the API (secret values masked, connection status without tokens)."""
        values, _ = integrations_config.reveal_values(
            integration.config_schema, mapping.config_values, self._secret_box(), False, integration.name
        )
        return {
            "id": mapping.id,
            "integration_id": integration.id,
            "integration_name": integration.name,
            "organization_id": mapping.organization_id,
            "organization_name": organization_name,
            "entity_id": mapping.entity_id,
            "entity_name": mapping.entity_name,
            "config": values,
            "connection": cast("ConnectionStatus | None", connection_view(connection)),
            "updated_at": mapping.updated_at.isoformat(),
        }

    async def find_mapping(
        self, actor: Actor, ref: str, org: str
    ) -> tuple[Integration, IntegrationMapping, Organization]:
        """The mapping of an integration in an organization (platform admins).

        Raises:
            NotFoundError: No such integration, organization or mapping.
        """
        integration = await self.get_definition(actor, ref)
        organization = await self.organization(actor, org)
        mapping = await self._mapping(integration.id, organization.id)
        if mapping is None:
            raise NotFoundError(f"Integration {integration.name!r} is not mapped to {organization.name!r}.")
        return integration, mapping, organization

    async def _mapping(self, integration_id: str, organization_id: str) -> IntegrationMapping | None:
        stmt = select(IntegrationMapping).where(
            col(IntegrationMapping.integration_id) == integration_id,
            col(IntegrationMapping.organization_id) == organization_id,
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def connection_of(self, mapping: IntegrationMapping) -> IntegrationConnection | None:
        """The mapping's OAuth connection, if it has one."""
        stmt = select(IntegrationConnection).where(col(IntegrationConnection.mapping_id) == mapping.id)
        return (await self.session.execute(stmt)).scalars().first()

    async def set_mapping(self, actor: Actor, ref: str, org: str, body: Any) -> MappingView:
        """Create or change an organization's mapping: ``{"entity_id"?, "entity_name"?, "config"?}``.

        Absent fields stay as they are; in ``config`` a null value removes the organization's value
        (the default applies again) and a secret given as the mask keeps the stored secret.

        Raises:
            InvalidInputError: A bad field (named).
            NotFoundError: No such integration or organization.
        """
        integration = await self.get_definition(actor, ref)
        organization = await self.organization(actor, org)
        if not isinstance(body, dict):
            raise InvalidInputError.field("body", "must be a JSON object")
        reject_unknown_fields(body, MAPPING_FIELDS)
        mapping = await self._mapping(integration.id, organization.id)
        if mapping is None:
            mapping = IntegrationMapping(integration_id=integration.id, organization_id=organization.id)
            self.session.add(mapping)
        if "entity_id" in body:
            mapping.entity_id = _short_text(body["entity_id"], "entity_id", 255)
        if "entity_name" in body:
            mapping.entity_name = _short_text(body["entity_name"], "entity_name", 255)
        if "config" in body:
            mapping.config_values = integrations_config.merge_values(
                integration.config_schema, mapping.config_values, body["config"], self._secret_box(), "config"
            )
        mapping.updated_by, mapping.updated_at = actor.user_id, utcnow()
        await self.session.flush()
        return self.mapping_view(integration, mapping, organization.name, await self.connection_of(mapping))

    async def delete_mapping(self, actor: Actor, ref: str, org: str) -> bool:
        """Remove an organization's mapping with its connection; False when there was none."""
        integration = await self.get_definition(actor, ref)
        organization = await self.organization(actor, org)
        mapping = await self._mapping(integration.id, organization.id)
        if mapping is None:
            return False
        await self.session.delete(mapping)
        await self.session.flush()
        return True

    # ----- integrations.get -------------------------------------------------------------------------
    async def _scope(self, actor: Actor, org: str | None) -> str | None:
        if not org or org == actor.acting_org_id:
            return actor.acting_org_id
        if not actor.is_superuser:
            # The same answer whether or not the organization exists: ids and names cannot be probed.
            raise PermissionDeniedError("Only platform admins may read an integration of another organization.")
        found = None if len(org) > 200 or "\x00" in org else await OrganizationService(self.session).find(org)
        if found is None:
            raise NotFoundError(f"Organization {org!r} not found.")
        return found.id

    async def lookup(self, actor: Actor, name: str, org: str | None = None) -> Lookup:
        """The integration, the organization's mapping and connection for ``integrations.get``.

        Raises:
            PermissionDeniedError: A non-admin named another organization.
            NotFoundError: No such integration, or it is not mapped to the organization.
        """
        scope = await self._scope(actor, org)
        if not isinstance(name, str) or not name or len(name) > 200 or "\x00" in name:
            raise NotFoundError(f"Integration {name!r} not found.")
        stmt = select(Integration).where(col(Integration.name) == name)
        integration = (await self.session.execute(stmt)).scalars().first()
        if integration is None:
            raise NotFoundError(f"Integration {name!r} not found.")
        if scope is None:
            raise NotFoundError(
                f"Integration {name!r}: no organization chosen (integrations are configured per organization; "
                "pass org_id)."
            )
        mapping = await self._mapping(integration.id, scope)
        if mapping is None:
            raise NotFoundError(f"Integration {name!r} is not configured for this organization.")
        organization = await OrganizationService(self.session).cached(scope)
        return Lookup(
            integration, mapping, await self.connection_of(mapping), organization.name if organization else scope
        )


def build_data(lookup: Lookup, box: SecretBox, actor: Actor) -> IntegrationData:
    """The ``IntegrationData`` body: merged config and OAuth credentials, in clear for executions only."""
    reveal = actor.may_read_secrets  # executions of workspace workflows; notebook runs of platform admins only
    integration, mapping = lookup.integration, lookup.mapping
    defaults, default_secrets = integrations_config.reveal_values(
        integration.config_schema, integration.config_defaults, box, reveal, integration.name
    )
    values, value_secrets = integrations_config.reveal_values(
        integration.config_schema, mapping.config_values, box, reveal, integration.name
    )
    oauth: OAuthCredentials | None = None
    connection = lookup.connection
    plaintexts = default_secrets + value_secrets
    if connection is not None:
        access = SECRET_MASK
        refresh: str | None = SECRET_MASK if connection.refresh_token else None
        if reveal:
            access = box.decrypt(connection.access_token, f"the access token of {integration.name!r}")
            plaintexts.append(access)
            if connection.refresh_token:
                refresh = box.decrypt(connection.refresh_token, f"the refresh token of {integration.name!r}")
                plaintexts.append(refresh)
        oauth = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": connection.expires_at.isoformat() if connection.expires_at else None,
            "token_type": connection.token_type,
            "scopes": connection.scopes.split(),
            "status": connection.status,
            "masked": not reveal,
        }
    for plaintext in plaintexts:
        # Remembered before the values leave the server, so the execution's output is redacted.
        redaction.remember(actor.execution_id, plaintext)
    return {
        "integration_id": integration.id,
        "name": integration.name,
        "entity_id": mapping.entity_id,
        "entity_name": mapping.entity_name,
        "config": {**defaults, **values},
        "oauth": oauth,
    }


async def integration_data(
    sessions: async_sessionmaker[AsyncSession],
    secret_box: Callable[[], SecretBox],
    manager: TokenManager,
    actor: Actor,
    name: str,
    org: str | None = None,
) -> IntegrationData:
    """``integrations.get``: look up, refresh the token if it expires soon (executions), build the answer.

    The lookup's transaction ends before the provider is called.

    Raises:
        PermissionDeniedError: A non-admin named another organization.
        NotFoundError: No such integration, or not configured for the organization.
        IntegrationUnavailableError: The connection is broken or its token cannot be refreshed.
    """
    async with transaction(sessions) as session:
        lookup = await IntegrationService(session, secret_box).lookup(actor, name, org)
    connection = lookup.connection
    if connection is not None and actor.may_read_secrets:
        snapshot = await manager.fresh(connection.id)
        lookup = Lookup(lookup.integration, lookup.mapping, snapshot.connection, lookup.organization_name)
    # Callers outside executions get masked tokens: no refresh, and a broken connection shows its status.
    return build_data(lookup, secret_box(), actor)
