"""Demo: the integration pattern, with `bifrost.integrations`.

An integration (here "HaloPSA") is set up once by a platform admin on the Integrations
page: OAuth settings, a config schema, and a mapping per client organization (see
docs/integrations.md). Workflows then ask for it by name and get that organization's
config and a fresh access token; nothing secret lives in the workflow code.
"""

import logging

from bifrost import UserError, context, integrations, workflow

logger = logging.getLogger(__name__)

INTEGRATION = "HaloPSA"


@workflow(category="Integrations", tags=["demo", "integrations"])
async def psa_connection_status() -> dict:
    """Show how this organization is connected to the PSA (fails clearly until it is set up)."""
    psa = await integrations.get(INTEGRATION)
    if psa is None:
        # Not defined, or not mapped to this organization: tell the user what to do.
        raise UserError(
            f"The {INTEGRATION} integration is not set up for {context.org_name or 'the global scope'}. "
            f"A platform admin creates an integration named {INTEGRATION!r} on the Integrations page "
            "(/integrations), maps it to this organization and connects it; see docs/integrations.md."
        )
    connected = psa.oauth is not None
    logger.info("%s mapped to %s, connected: %s", INTEGRATION, psa.entity_name or psa.entity_id, connected)
    # With a connection you would call the API, e.g.
    #   httpx.get(f"{psa.config['base_url']}/api/tickets",
    #             headers={"Authorization": f"Bearer {psa.oauth.access_token}"})
    # The token is redacted from this run's logs and result if it ever ends up there.
    return {
        "integration": INTEGRATION,
        "entity": psa.entity_name or psa.entity_id,
        "config_keys": sorted(psa.config),
        "connected": connected,
    }
