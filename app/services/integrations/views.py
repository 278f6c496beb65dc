"""API shapes of the integrations domain (TypedDicts: plain dicts at run time, documented in ``/schema``).

The ``...Body`` shapes document request bodies only: the service checks them field by field (422 naming the
field), see :func:`app.web.api.schemas.documented_body`.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ConfigField(TypedDict):
    """One field of an integration's config schema (``type``: string, int, bool or json; only strings are secret)."""

    key: str
    type: str
    secret: bool
    description: str | None


class IntegrationBody(TypedDict, total=False):
    """An integration's definition (``name`` required on create; on change, absent fields stay).

    ``client_secret`` null or empty removes it, the mask keeps it; ``scopes`` is a list or one space-separated
    string; ``config_defaults`` maps schema keys to default values (null removes one)."""

    name: str
    description: str | None
    oauth_flow: Literal["none", "authorization_code", "client_credentials"] | None
    authorization_url: str | None
    token_url: str | None
    client_id: str | None
    client_secret: str | None
    token_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None
    scopes: list[str] | str | None
    config_schema: list[ConfigField] | None
    config_defaults: dict[str, Any]


class IntegrationDefinition(TypedDict):
    """An integration's definition: never its client secret (``has_client_secret``), secret defaults masked."""

    id: str
    name: str
    description: str | None
    oauth_flow: str
    authorization_url: str | None
    token_url: str | None
    client_id: str | None
    has_client_secret: bool
    token_auth_method: str
    scopes: list[str]
    config_schema: list[ConfigField]
    config_defaults: dict[str, Any]
    created_at: str
    updated_at: str


class ConnectionStatus(TypedDict):
    """A mapping's OAuth connection (never its tokens)."""

    status: str
    token_type: str
    scopes: list[str]
    expires_at: str | None
    has_refresh_token: bool
    connected_at: str
    last_refreshed_at: str | None
    refresh_count: int
    last_error: str | None
    last_error_at: str | None


class MappingBody(TypedDict, total=False):
    """An organization's mapping (absent fields stay): the provider's entity, and config values over the
    defaults (null removes the organization's value; a secret given as the mask keeps the stored one)."""

    entity_id: str | None
    entity_name: str | None
    config: dict[str, Any]


class MappingView(TypedDict):
    """An integration mapped to one organization, with its config (secrets masked) and connection."""

    id: str
    integration_id: str
    integration_name: str
    organization_id: str
    organization_name: str
    entity_id: str | None
    entity_name: str | None
    config: dict[str, Any]
    connection: ConnectionStatus | None
    updated_at: str


class OAuthCredentials(TypedDict):
    """The connection's tokens: in clear for executions, masked (``masked``) for everyone else."""

    access_token: str
    refresh_token: str | None
    expires_at: str | None
    token_type: str
    scopes: list[str]
    status: str
    masked: bool


class IntegrationData(TypedDict):
    """``integrations.get``: the merged config (defaults, then the organization's values) and OAuth credentials."""

    integration_id: str
    name: str
    entity_id: str | None
    entity_name: str | None
    config: dict[str, Any]
    oauth: OAuthCredentials | None


class Connection(TypedDict):
    """The mapping's connection after a connect or refresh."""

    connection: ConnectionStatus


class AuthorizationStart(TypedDict):
    """The authorization code flow: open ``authorize_url`` in a browser logged in as the same user."""

    authorize_url: str
    redirect_uri: str
