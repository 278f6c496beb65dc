"""Integrations: OAuth settings and config schema, per-organization mappings, their OAuth connections.

Every secret here (client secret, secret config values, access and refresh tokens, PKCE code
verifiers) is stored as a Fernet token (``app.services.secrets``); the key lives outside the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class Integration(SQLModel, table=True):
    """An external service admins define once: how to get OAuth tokens and which config it takes.

    ``oauth_flow`` is ``none``, ``authorization_code`` (with PKCE) or ``client_credentials``;
    ``token_auth_method`` how the client authenticates at the token URL (``client_secret_basic``,
    ``client_secret_post`` or ``none``).
    ``token_url`` and ``authorization_url`` may contain ``{entity_id}``, filled from each
    organization's mapping. ``config_schema`` is a list of ``{"key", "type", "secret",
    "description"}``; ``config_defaults`` maps keys to global default values (secret ones as
    Fernet tokens).
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(index=True, unique=True, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    oauth_flow: str = Field(default="none", max_length=30)
    authorization_url: str | None = Field(default=None, max_length=2000)
    token_url: str | None = Field(default=None, max_length=2000)
    client_id: str | None = Field(default=None, max_length=500)
    client_secret: str | None = None
    token_auth_method: str = Field(default="client_secret_basic", max_length=30)
    scopes: str = Field(default="", max_length=2000)
    config_schema: list[Any] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    config_defaults: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    updated_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class IntegrationMapping(SQLModel, table=True):
    """One organization's use of an integration: its entity at the provider and its config values.

    ``config_values`` overrides the integration's defaults key by key (secret ones as Fernet tokens).
    """

    __tablename__ = "integration_mapping"
    __table_args__ = (UniqueConstraint("integration_id", "organization_id", name="uq_integration_mapping_org"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    integration_id: str = Field(
        sa_column=Column(String(36), ForeignKey("integration.id", ondelete="CASCADE"), nullable=False)
    )
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    entity_id: str | None = Field(default=None, max_length=255)
    entity_name: str | None = Field(default=None, max_length=255)
    config_values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    updated_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class IntegrationConnection(SQLModel, table=True):
    """The OAuth tokens of one mapping (at most one row per mapping).

    ``status`` is ``connected`` or ``broken`` (the provider refused a refresh: connect again).
    ``version`` grows with every token change; ``refresh_claim`` / ``refresh_claim_until`` are
    the database-level guard that lets one process at a time refresh (see
    ``app.services.integrations.oauth_tokens``).
    """

    __tablename__ = "integration_connection"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    mapping_id: str = Field(
        sa_column=Column(
            String(36), ForeignKey("integration_mapping.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    status: str = Field(default="connected", max_length=20)
    access_token: str
    refresh_token: str | None = None
    token_type: str = Field(default="Bearer", max_length=40)
    scopes: str = Field(default="", max_length=2000)
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    connected_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    connected_by: str | None = Field(default=None, max_length=36)
    last_refreshed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    refresh_count: int = 0
    last_error: str | None = Field(default=None, max_length=2000)
    last_error_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    version: int = 1
    refresh_claim: str | None = Field(default=None, max_length=64)
    refresh_claim_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class IntegrationOAuthState(SQLModel, table=True):
    """A pending browser authorization: the ``state`` sent to the provider, kept until the callback.

    Only the SHA-256 of ``state`` is stored; the row is deleted when the callback uses it, so a
    replayed ``state`` finds nothing.
    """

    __tablename__ = "integration_oauth_state"

    state_hash: str = Field(primary_key=True, max_length=64)
    mapping_id: str = Field(
        sa_column=Column(String(36), ForeignKey("integration_mapping.id", ondelete="CASCADE"), nullable=False)
    )
    user_id: str = Field(max_length=36)
    code_verifier: str
    redirect_uri: str = Field(max_length=2000)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
