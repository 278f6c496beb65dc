"""Re-encrypting the integrations' secrets under the newest key (part of ``bifrost secrets rotate``).

Integrations keep Fernet tokens in five places: the client secret, secret config defaults,
secret mapping values, the OAuth tokens of each connection, and the PKCE verifier of pending
authorizations. Rotation re-encrypts all of them in the caller's transaction, so it is all or
nothing together with the config secrets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.integration import Integration, IntegrationConnection, IntegrationMapping, IntegrationOAuthState
from app.services.secrets import SecretBox, SecretKeyError


@dataclass
class _Rotation:
    box: SecretBox
    count: int = 0
    old: int = 0
    failed: list[str] = field(default_factory=list)

    def token(self, token: str | None, what: str) -> str | None:
        if token is None:
            return None
        try:
            if not self.box.is_current(token):
                self.old += 1
            rotated = self.box.rotate(token, what)
        except SecretKeyError:
            self.failed.append(what)
            return token
        self.count += 1
        return rotated

    def values(self, schema: list[dict[str, Any]], stored: dict[str, Any], what: str) -> dict[str, Any]:
        secret_keys = {f.get("key") for f in schema if f.get("secret")}
        return {
            key: self.token(value, f"config value {key!r} of {what}")
            if key in secret_keys and isinstance(value, str)
            else value
            for key, value in stored.items()
        }


@dataclass(frozen=True)
class IntegrationRotationReport:
    """How many integration secrets were re-encrypted, and how many were under an older key."""

    secrets: int
    were_on_old_keys: int


async def rotate_integration_secrets(session: AsyncSession, box: SecretBox) -> IntegrationRotationReport:
    """Re-encrypt every integration secret under ``box``'s newest key.

    Args:
        session: The transaction to write in (the caller commits or rolls back).
        box: The configured keys, newest first.

    Returns:
        The counts.

    Raises:
        SecretKeyError: Secrets no configured key decrypts (nothing should be committed then).
    """
    rotation = _Rotation(box)
    integrations = {i.id: i for i in (await session.execute(select(Integration))).scalars()}
    for integration in integrations.values():
        what = f"integration {integration.name!r}"
        integration.client_secret = rotation.token(integration.client_secret, f"the client secret of {what}")
        integration.config_defaults = rotation.values(
            integration.config_schema, integration.config_defaults, f"the defaults of {what}"
        )
    for mapping in (await session.execute(select(IntegrationMapping))).scalars():
        parent = integrations.get(mapping.integration_id)
        schema = parent.config_schema if parent else []
        name = parent.name if parent else mapping.integration_id
        mapping.config_values = rotation.values(
            schema, mapping.config_values, f"the mapping of {name!r} for organization {mapping.organization_id}"
        )
    for connection in (await session.execute(select(IntegrationConnection))).scalars():
        what = f"connection {connection.id}"
        connection.access_token = rotation.token(connection.access_token, f"the access token of {what}") or ""
        connection.refresh_token = rotation.token(connection.refresh_token, f"the refresh token of {what}")
    for pending in (await session.execute(select(IntegrationOAuthState))).scalars():
        pending.code_verifier = rotation.token(pending.code_verifier, "a pending authorization") or ""
    if rotation.failed:
        raise SecretKeyError(
            f"{len(rotation.failed)} integration secret(s) cannot be decrypted with the keys in {box.source}: "
            f"{', '.join(rotation.failed)}. Nothing was changed; add the key they were written with (after the "
            "newest) and run the command again."
        )
    await session.flush()
    return IntegrationRotationReport(secrets=rotation.count, were_on_old_keys=rotation.old)
