"""Integration configuration and OAuth credentials (``bifrost.integrations``)."""

from __future__ import annotations

from urllib.parse import quote

from bifrost import _client
from bifrost.types import IntegrationData


async def get(name: str, org_id: str | None = None) -> IntegrationData | None:
    """Return the integration as configured for the organization, with fresh OAuth tokens.

    The config is the integration's defaults overridden by the organization's values. Inside a
    running workflow secrets and tokens are decrypted (and redacted from the execution's logs and
    result); an access token that expires within a few minutes is refreshed first. Called with an
    API key from a script, secrets and tokens read ``"********"`` (``oauth.masked`` is true).

    Args:
        name: Integration name.
        org_id: Another organization, by id or name (platform admins only).

    Returns:
        The merged configuration and decrypted tokens, or None when the
        integration does not exist or is not configured for the organization.

    Raises:
        IntegrationError: The organization's connection is broken (the provider refused to
            refresh the token: an admin must connect it again) or the provider is unreachable
            while the token is expired.
        PermissionDeniedError: ``org_id`` names another organization and the caller is not a
            platform admin.
    """
    body = await _client.call_or_none("GET", f"/integrations/{quote(name, safe='')}", params={"org_id": org_id})
    return IntegrationData.model_validate(body) if body else None
