"""Workflows and data providers for the web form tests (copied into a temporary workspace).

Names start with ``ff_`` so they cannot clash with other test workspace files.
"""

import asyncio
import logging
from datetime import date
from typing import Annotated, Literal

from pydantic import Field

from bifrost import UserError, context, data_provider, workflow

logger = logging.getLogger(__name__)

PEOPLE = {
    "eng": [("Ada Lovelace", "ada"), ("Grace Hopper", "grace")],
    "sales": [("Don Draper", "don")],
}


@data_provider(cache_ttl_seconds=300)
async def ff_departments() -> list[dict]:
    """Departments (a provider without inputs)."""
    logger.info("listing departments for %s", context.org_name)
    return [{"label": "Engineering", "value": "eng"}, {"label": "Sales", "value": "sales"}]


@data_provider(cache_ttl_seconds=300)
async def ff_people(department: str) -> list[dict]:
    """People of one department (takes the department field's value)."""
    return [{"label": label, "value": value} for label, value in PEOPLE.get(department, [])]


@data_provider(cache_ttl_seconds=0)
async def ff_broken() -> list[dict]:
    """A provider whose directory is down."""
    raise UserError("The directory is offline; try again later.")


@data_provider(cache_ttl_seconds=300)
async def ff_not_options() -> dict:
    """Returns something that is not a list of options."""
    return {"oops": True}


@workflow(category="Forms", tags=["forms"])
async def ff_request_access(
    department: Annotated[str, Field(json_schema_extra={"data_provider": "ff_departments"})],
    person: Annotated[str, Field(json_schema_extra={"data_provider": "ff_people"})],
    start: date,
    seats: Annotated[int, Field(ge=1, le=10)] = 1,
    level: Literal["read", "write"] = "read",
    extras: list[Literal["vpn", "mail", "crm"]] | None = None,
    urgent: bool = False,
    notes: dict | None = None,
    steps: int = 3,
) -> list[dict]:
    """Grant a person access, logging each step.

    Args:
        department: Department of the person.
        person: Who gets access.
        start: First day of access.
        seats: Licences to assign.
        level: Access level.
        extras: Extra services.
        urgent: Skip the queue.
        notes: Free-form JSON notes.
        steps: How many slow steps to log.
    """
    for step in range(steps):
        logger.info("step %d of %d for %s", step + 1, steps, person)
        await asyncio.sleep(0.4)
    return [
        {"person": person, "department": department, "level": level, "seats": seats},
        {"person": "manager", "department": department, "level": "read", "seats": 0},
    ]


@workflow(category="Forms")
async def ff_summary(name: str, when: date | None = None, tags: list[str] | None = None) -> dict:
    """Return an object (shown as key/value pairs)."""
    return {"name": name, "when": when.isoformat() if when else None, "tags": tags or [], "nested": {"a": 1}}


@workflow(category="Forms")
async def ff_count(n: int = 3) -> int:
    """Return a plain number (shown as JSON)."""
    return n * 2


@workflow(category="Forms")
async def ff_fails(reason: str = "The mailbox is full.") -> None:
    """Fail with a message meant for the user."""
    raise UserError(reason)


@workflow(category="Forms")
async def ff_broken_choices(
    source: Annotated[str, Field(json_schema_extra={"data_provider": "ff_broken"})] = "",
    shape: Annotated[str, Field(json_schema_extra={"data_provider": "ff_not_options"})] = "",
    label: str = "x",
) -> str:
    """A form whose providers fail (the rest of the form still works)."""
    return label


@workflow(category="Forms")
async def ff_notify(
    team: Annotated[str, Field(json_schema_extra={"data_provider": "ff_departments"})],
    recipients: Annotated[
        list[str],
        Field(
            json_schema_extra={"data_provider": "ff_people", "data_provider_inputs": {"department": {"field": "team"}}}
        ),
    ],
) -> dict:
    """Notify several people of a team (a multi-select whose choices come from a provider)."""
    return {"team": team, "recipients": recipients}
