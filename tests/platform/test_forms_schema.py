"""``schema_from_workflow``: the form a workflow's signature turns into (parameters as the platform stores them)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from app.services.forms.schema import schema_from_workflow, validate_form_schema
from bifrost._schema import infer_parameters


class Tier(enum.Enum):
    BASIC = "basic"
    PLUS = "plus"


async def onboard(
    email: Annotated[str, Field(max_length=120, pattern=r"^[^@]+@[^@]+$")],
    seats: Annotated[int, Field(ge=1, le=50)] = 5,
    plan: Literal["monthly", "yearly"] = "yearly",
    tier: Tier = Tier.PLUS,
    groups: list[Literal["sales", "it"]] | None = None,
    start: datetime | None = None,
    notify: bool = True,
    quota: Annotated[int, Field(le=10)] = 99,
    extra: dict | None = None,
) -> None:
    """Onboard a user.

    Args:
        email: Work address.
        seats: How many licences.
    """


def _generated() -> dict[str, dict]:
    _, specs, _ = infer_parameters(onboard)
    schema = schema_from_workflow([s.to_dict() for s in specs])
    assert validate_form_schema(schema) == schema  # valid and already normalised
    return {f["name"]: f for f in schema["fields"]}


def test_each_parameter_kind_becomes_the_matching_field() -> None:
    fields = _generated()
    assert list(fields) == ["email", "seats", "plan", "tier", "groups", "start", "notify", "quota", "extra"]
    email = fields["email"]
    assert (email["type"], email["required"], email["label"], email["help_text"]) == (
        "text",
        True,
        "Email",
        "Work address.",
    )
    assert email["validation"] == {"min": None, "max": 120, "pattern": r"^[^@]+@[^@]+$", "message": None}
    assert fields["seats"]["type"] == "number" and fields["seats"]["default"] == 5
    assert fields["seats"]["validation"]["min"] == 1 and fields["seats"]["validation"]["max"] == 50
    assert fields["plan"]["type"] == "select" and fields["plan"]["default"] == "yearly"
    assert [o["value"] for o in fields["plan"]["options"]] == ["monthly", "yearly"]
    assert [o["value"] for o in fields["tier"]["options"]] == ["basic", "plus"] and fields["tier"]["default"] == "plus"
    assert fields["groups"]["type"] == "multi_select" and fields["groups"]["required"] is False
    assert [o["value"] for o in fields["groups"]["options"]] == ["sales", "it"]
    assert fields["start"]["type"] == "datetime" and fields["start"]["default"] is None
    assert fields["notify"]["type"] == "checkbox" and fields["notify"]["default"] is True
    assert fields["extra"]["type"] == "textarea" and fields["extra"]["help_text"] == "A JSON value."


def test_a_default_the_form_cannot_hold_is_dropped_not_the_bound() -> None:
    quota = _generated()["quota"]
    # The signature's default (99) breaks its own bound (le=10); the form keeps the bound.
    assert quota["default"] is None and quota["validation"]["max"] == 10
