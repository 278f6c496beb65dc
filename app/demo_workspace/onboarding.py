"""Demo: a typical MSP onboarding workflow with typed parameters and a data provider."""

import logging
from datetime import date
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from bifrost import UserError, context, data_provider, workflow

logger = logging.getLogger(__name__)


class License(str, Enum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


class Address(BaseModel):
    street: str
    city: str
    country: str = "US"


@data_provider(name="get_departments", description="List departments", cache_ttl_seconds=600)
async def get_departments() -> list[dict]:
    """Departments a new hire can join."""
    return [
        {"label": "Engineering", "value": "eng"},
        {"label": "Sales", "value": "sales"},
        {"label": "Support", "value": "support", "metadata": {"queue": "tier1"}},
    ]


@workflow(category="User Management", tags=["onboarding", "m365"], timeout_seconds=60, time_saved=15)
async def onboard_employee(
    first_name: str,
    last_name: str,
    start_date: date,
    # The automatic form shows this parameter as a dropdown filled by the get_departments provider.
    department: Annotated[str, Field(json_schema_extra={"data_provider": "get_departments"})] = "eng",
    license: License = License.STANDARD,
    seat: Literal["office", "remote", "hybrid"] = "hybrid",
    groups: list[str] | None = None,
    address: Address | None = None,
) -> dict:
    """Create the accounts a new employee needs on day one.

    Args:
        first_name: Given name.
        last_name: Family name.
        start_date: First working day.
        department: Department code (from get_departments).
        license: Microsoft 365 license tier.
        seat: Where the employee works.
        groups: Extra security groups.
        address: Shipping address for the laptop.
    """
    if start_date < date(2000, 1, 1):
        raise UserError("The start date looks wrong: pick a date after 2000-01-01.")
    username = f"{first_name[0]}{last_name}".lower()
    logger.info("Onboarding %s in %s (org %s)", username, department, context.org_name)
    logger.debug("groups=%s license=%s seat=%s", groups, license.value, seat)
    if address:
        logger.info("Laptop ships to %s, %s", address.city, address.country)
    return {
        "username": username,
        "email": f"{username}@example.com",
        "department": department,
        "license": license.value,
        "starts": start_date.isoformat(),
        "groups": groups or [],
    }
