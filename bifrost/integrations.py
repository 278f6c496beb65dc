"""Integration configuration and OAuth credentials (``bifrost.integrations``)."""

from __future__ import annotations

from urllib.parse import quote

from bifrost import _client
from bifrost.types import IntegrationData


async def get(name: str, org_id: str | None = None) -> IntegrationData | None:
    """Return the integration as configured for the organization, with fresh OAuth tokens.

    Args:
        name: Integration name.
        org_id: Another organization (platform admins only).

    Returns:
        The merged configuration and decrypted tokens, or None when the
        integration is not configured for the organization.
    """
    body = await _client.call_or_none("GET", f"/integrations/{quote(name, safe='')}", params={"org_id": org_id})
    return IntegrationData.model_validate(body) if body else None
