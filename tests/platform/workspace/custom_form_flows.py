"""Workflows behind the custom form page tests (copied into a temporary workspace).

Names start with ``cf_`` so they cannot clash with other test workspace files.
"""

import logging

from bifrost import data_provider, files, workflow

logger = logging.getLogger(__name__)


@data_provider(cache_ttl_seconds=300)
async def cf_sites() -> list[dict]:
    """Office sites for the custom form's select."""
    return [{"label": "London", "value": "lon"}, {"label": "Paris", "value": "par"}]


@workflow(category="Forms", tags=["forms"])
async def cf_onboard(
    name: str,
    site: str,
    laptop: bool = False,
    laptop_model: str | None = None,
    seats: int = 1,
    contract: dict | None = None,
) -> dict:
    """Onboard a starter; reads the uploaded contract (a dict: path, name, size, content_type)."""
    logger.info("onboarding %s at %s", name, site)
    text = None
    if contract is not None:
        text = await files.read(contract["path"], location="uploads")
        logger.info("read %s (%s bytes)", contract["name"], contract["size"])
    return {
        "name": name,
        "site": site,
        "laptop": laptop,
        "laptop_model": laptop_model,
        "seats": seats,
        "contract_name": contract["name"] if contract else None,
        "contract_type": contract["content_type"] if contract else None,
        "contract_text": text,
    }
