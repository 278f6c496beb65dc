"""Connecting an organization's mapping to its provider (platform admins).

* **Authorization code with PKCE** (a person signs in at the provider):
  :func:`start_authorization` stores a pending request (SHA-256 of a fresh ``state``, the
  encrypted PKCE verifier, the redirect URI, who started it, 10 minutes to live) and returns the
  provider's authorize URL; :func:`complete_authorization` runs on the callback. It consumes the
  ``state`` first (deleted, so a replay finds nothing), checks it was started by the same user and
  has not expired, then exchanges the code. Any failure — unknown, replayed or expired ``state``,
  an ``error`` from the provider, a refused exchange, a token response without the expected
  fields — raises :class:`OAuthFlowError` with a clear message and stores no token.
* **Client credentials**: :func:`connect_client_credentials` asks the token URL directly.

No database transaction is open while the provider is called.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.models.base import utcnow
from app.models.integration import Integration, IntegrationConnection, IntegrationMapping, IntegrationOAuthState
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import InvalidInputError, NotFoundError
from app.services.integrations import oauth_client
from app.services.integrations.oauth_client import (
    FLOW_AUTHORIZATION_CODE,
    FLOW_CLIENT_CREDENTIALS,
    OAuthFlowError,
    TokenSet,
)
from app.services.integrations.oauth_tokens import TokenManager, apply_tokens, provider_settings
from app.services.integrations.service import IntegrationService, connection_view
from app.services.secrets import SecretBox

STATE_TTL = timedelta(minutes=10)


def _require_entity(integration: Integration, mapping: IntegrationMapping) -> None:
    """A URL with ``{entity_id}`` needs the mapping's entity id: say so as bad input, before any provider call."""
    urls = (integration.token_url or "") + (integration.authorization_url or "")
    if "{entity_id}" in urls and not mapping.entity_id:
        raise InvalidInputError.field(
            "entity_id", f"is required: the URLs of {integration.name!r} contain {{entity_id}}"
        )


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Connected:
    """Outcome of a successful connection."""

    integration_id: str
    integration_name: str
    organization_name: str
    connection: dict[str, Any]


async def start_authorization(
    session: AsyncSession, secret_box: Callable[[], SecretBox], actor: Actor, ref: str, org: str, redirect_uri: str
) -> str:
    """Record a pending authorization and return the provider URL to send the browser to.

    Raises:
        InvalidInputError: The integration does not use the authorization code flow.
        OAuthFlowError: The settings cannot make an authorize URL (e.g. ``{entity_id}`` without an entity id).
        NotFoundError: No such integration, organization or mapping.
    """
    service = IntegrationService(session, secret_box)
    integration, mapping, _ = await service.find_mapping(actor, ref, org)
    if integration.oauth_flow != FLOW_AUTHORIZATION_CODE:
        raise InvalidInputError.field(
            "oauth_flow", f"integration {integration.name!r} uses {integration.oauth_flow}, not authorization_code"
        )
    _require_entity(integration, mapping)
    box = secret_box()
    settings = provider_settings(integration, mapping, box, 30.0)
    state, verifier = oauth_client.new_state(), oauth_client.new_code_verifier()
    url = oauth_client.authorization_url(settings, redirect_uri, state, verifier)
    now = utcnow()
    # Pending requests nobody finished are dropped here rather than by a job.
    await session.execute(delete(IntegrationOAuthState).where(col(IntegrationOAuthState.expires_at) < now))
    session.add(
        IntegrationOAuthState(
            state_hash=_hash(state),
            mapping_id=mapping.id,
            user_id=actor.user_id,
            code_verifier=box.encrypt(verifier),
            redirect_uri=redirect_uri,
            expires_at=now + STATE_TTL,
        )
    )
    await session.flush()
    return url


async def complete_authorization(
    sessions: async_sessionmaker[AsyncSession],
    secret_box: Callable[[], SecretBox],
    actor: Actor,
    params: dict[str, str],
    timeout: float,
) -> Connected:
    """Finish the authorization the provider redirected back with (``code``/``state`` or ``error``).

    Raises:
        OAuthFlowError: Anything wrong (see the module docstring); nothing is stored then.
    """
    state = params.get("state") or ""
    if not state:
        raise OAuthFlowError("The provider's answer has no state: the connection was not made.")
    box = secret_box()
    async with transaction(sessions) as session:
        pending = await session.get(IntegrationOAuthState, _hash(state))
        if pending is not None:
            await session.delete(pending)  # one use only, whatever happens next
    if pending is None:
        raise OAuthFlowError(
            "This authorization is unknown or was already used (a wrong or replayed state): start again with Connect."
        )
    if pending.user_id != actor.user_id:
        raise OAuthFlowError("This authorization was started by another user: start again with Connect.")
    if pending.expires_at < utcnow():
        raise OAuthFlowError("This authorization expired (10 minutes): start again with Connect.")
    async with transaction(sessions) as session:
        mapping_row = await _mapping_context(session, secret_box, actor, pending)
    if mapping_row is None:
        raise OAuthFlowError("The integration or its organization mapping was removed meanwhile.")
    integration, mapping, organization_name = mapping_row
    if params.get("error"):
        detail = params.get("error_description") or ""
        raise OAuthFlowError(
            f"The provider refused the authorization: {params['error'][:200]}"
            + (f" ({detail[:300]})" if detail else "")
        )
    code = params.get("code") or ""
    if not code:
        raise OAuthFlowError("The provider's answer has no authorization code: the connection was not made.")
    settings = provider_settings(integration, mapping, box, timeout)
    verifier = box.decrypt(pending.code_verifier, "a pending authorization")
    tokens = await oauth_client.exchange_code(settings, code, pending.redirect_uri, verifier)
    view = await _store(sessions, box, mapping.id, tokens, actor)
    return Connected(integration.id, integration.name, organization_name, view)


async def _mapping_context(
    session: AsyncSession, secret_box: Callable[[], SecretBox], actor: Actor, pending: IntegrationOAuthState
) -> tuple[Integration, IntegrationMapping, str] | None:
    mapping = await session.get(IntegrationMapping, pending.mapping_id)
    if mapping is None:
        return None
    service = IntegrationService(session, secret_box)
    try:
        integration = await service.get_definition(actor, mapping.integration_id)
        organization = await service.organization(actor, mapping.organization_id)
    except NotFoundError:
        return None
    return integration, mapping, organization.name


async def connect_client_credentials(
    sessions: async_sessionmaker[AsyncSession],
    secret_box: Callable[[], SecretBox],
    actor: Actor,
    ref: str,
    org: str,
    timeout: float,
) -> Connected:
    """Get a client-credentials token for an organization's mapping and store it.

    Raises:
        InvalidInputError: The integration does not use the client credentials flow.
        OAuthFlowError: The provider refused or answered without the expected fields (nothing stored).
        NotFoundError: No such integration, organization or mapping.
    """
    async with transaction(sessions) as session:
        integration, mapping, organization = await IntegrationService(session, secret_box).find_mapping(actor, ref, org)
    if integration.oauth_flow != FLOW_CLIENT_CREDENTIALS:
        raise InvalidInputError.field(
            "oauth_flow", f"integration {integration.name!r} uses {integration.oauth_flow}, not client_credentials"
        )
    _require_entity(integration, mapping)
    box = secret_box()
    tokens = await oauth_client.client_credentials(provider_settings(integration, mapping, box, timeout))
    view = await _store(sessions, box, mapping.id, tokens, actor)
    return Connected(integration.id, integration.name, organization.name, view)


async def _store(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, mapping_id: str, tokens: TokenSet, actor: Actor
) -> dict[str, Any]:
    """Create or replace the mapping's connection with ``tokens`` (a broken one becomes connected)."""
    async with transaction(sessions) as session:
        mapping = await session.get(IntegrationMapping, mapping_id)
        if mapping is None:
            raise OAuthFlowError("The organization's mapping was removed meanwhile: nothing was stored.")
        stmt = select(IntegrationConnection).where(col(IntegrationConnection.mapping_id) == mapping_id)
        connection = (await session.execute(stmt)).scalars().first()
        if connection is None:
            connection = IntegrationConnection(mapping_id=mapping_id, access_token="")
            session.add(connection)
        else:
            connection.version += 1
        apply_tokens(connection, tokens, box)
        connection.connected_at, connection.connected_by = utcnow(), actor.user_id
        connection.last_refreshed_at = None
        connection.refresh_count = 0
        connection.refresh_claim = connection.refresh_claim_until = None
        await session.flush()
        view = connection_view(connection)
        details = {"mapping_id": mapping_id, "connection_id": connection.id}
        await audit.record(
            session,
            actor,
            audit.INTEGRATION_CONNECTED,
            "integration",
            mapping.integration_id,
            mapping.organization_id,
            details,
        )
    assert view is not None
    return view


async def disconnect(
    session: AsyncSession, secret_box: Callable[[], SecretBox], actor: Actor, ref: str, org: str
) -> bool:
    """Forget the mapping's tokens; False when it had none."""
    service = IntegrationService(session, secret_box)
    _, mapping, _ = await service.find_mapping(actor, ref, org)
    connection = await service.connection_of(mapping)
    if connection is None:
        return False
    await session.delete(connection)
    await session.flush()
    details = {"mapping_id": mapping.id}
    await audit.record(
        session,
        actor,
        audit.INTEGRATION_DISCONNECTED,
        "integration",
        mapping.integration_id,
        mapping.organization_id,
        details,
    )
    return True


async def refresh_now(
    sessions: async_sessionmaker[AsyncSession],
    secret_box: Callable[[], SecretBox],
    manager: TokenManager,
    actor: Actor,
    ref: str,
    org: str,
) -> dict[str, Any]:
    """Refresh the mapping's token now, whatever its expiry; returns the connection's status.

    Raises:
        NotFoundError: No such integration, organization, mapping or connection.
        IntegrationUnavailableError: The connection is broken or the provider refused.
    """
    async with transaction(sessions) as session:
        service = IntegrationService(session, secret_box)
        _, mapping, organization = await service.find_mapping(actor, ref, org)
        connection = await service.connection_of(mapping)
    if connection is None:
        raise NotFoundError(f"The mapping in {organization.name!r} is not connected.")
    snapshot = await manager.fresh(connection.id, force=True)
    view = connection_view(snapshot.connection)
    assert view is not None
    return view
