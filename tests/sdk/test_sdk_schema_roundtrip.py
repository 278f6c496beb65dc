"""The web process validates with ``model_from_json_schema(definition.params_schema)``.

It must accept and reject exactly what the worker's original ``params_model``
accepts and rejects, and produce the same JSON values.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from bifrost import workflow
from bifrost._schema import model_from_json_schema, validate_parameters
from bifrost.errors import ValidationError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shade(str, enum.Enum):  # noqa: UP042 - the classic str-mixin spelling
    LIGHT = "light"
    DARK = "dark"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    street: str = Field(min_length=1)
    zip_code: str = Field(pattern=r"^\d{5}$")
    country: Literal["de", "fr"] = "de"


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, lt=150)
    score: float = Field(default=0.0, multiple_of=0.5)
    tags: list[str] = Field(default_factory=list, max_length=3)
    address: Address | None = None
    ident: uuid.UUID | None = None
    wake_up: dt.time | None = None


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str


class Node(BaseModel):
    label: str
    children: list[Node] = []


class Aliased(BaseModel):
    first_name: str = Field(alias="firstName")
    type_: str = Field(alias="@type", default="x")


@workflow
async def everything(
    text: str,
    count: int,
    ratio: float = 1.0,
    flag: bool = False,
    day: dt.date | None = None,
    moment: dt.datetime | None = None,
    size: Literal["s", "m", "l"] = "m",
    number_choice: Literal[1, 2, 3] = 1,
    color: Color = Color.RED,
    priority: Priority = Priority.LOW,
    shade: Shade | None = None,
    names: list[str] = [],  # noqa: B006
    colors: list[Color] = [],  # noqa: B006
    extra: dict = {},  # noqa: B006
    counts: dict[str, int] = {},  # noqa: B006
    person: Person | None = None,
    people: list[Person] | None = None,
    loose: Loose | None = None,
    tree: Node | None = None,
    aliased: Aliased | None = None,
    bounded: Annotated[int, Field(ge=1, le=10)] = 5,
    code: Annotated[str, Field(min_length=2, max_length=4, pattern="^[A-Z]+$")] = "AB",
    note: str = None,  # type: ignore[assignment]  # noqa: RUF013 - implicit Optional
) -> None:
    """Every parameter shape the platform supports."""


BASE = {"text": "hello", "count": 1}
DROP = object()  # remove the key from BASE

VALID_PERSON = {"name": "Ada", "age": 36}

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # (label, params on top of BASE, accepted?)
    ("minimal", {}, True),
    ("missing required", {"text": DROP}, False),
    ("unknown parameter", {"nope": 1}, False),
    ("int from string", {"count": "5"}, True),
    ("int from float w/o fraction", {"count": 5.0}, True),
    ("int from fraction", {"count": 5.5}, False),
    ("int from word", {"count": "five"}, False),
    ("float from string", {"ratio": "0.25"}, True),
    ("float from word", {"ratio": "much"}, False),
    ("bool from string", {"flag": "yes"}, True),
    ("bool from garbage", {"flag": "perhaps"}, False),
    ("date from iso", {"day": "2024-02-29"}, True),
    ("date invalid", {"day": "2023-02-29"}, False),
    ("date null", {"day": None}, True),
    ("datetime from iso", {"moment": "2024-01-01T08:00:00Z"}, True),
    ("datetime garbage", {"moment": "yesterday"}, False),
    ("literal ok", {"size": "l"}, True),
    ("literal bad", {"size": "xl"}, False),
    ("literal int ok", {"number_choice": 2}, True),
    ("literal int bad", {"number_choice": 4}, False),
    ("literal int as string", {"number_choice": "2"}, False),
    ("enum value", {"color": "blue"}, True),
    ("enum name is not a value", {"color": "BLUE"}, False),
    ("int enum value", {"priority": 2}, True),
    ("int enum from string", {"priority": "2"}, True),
    ("int enum bad", {"priority": 3}, False),
    ("str enum", {"shade": "dark"}, True),
    ("str enum bad", {"shade": "grey"}, False),
    ("list of str", {"names": ["a", "b"]}, True),
    ("list not a list", {"names": "a"}, False),
    ("list of enums", {"colors": ["red", "blue"]}, True),
    ("list of enums bad", {"colors": ["red", "green"]}, False),
    ("dict any", {"extra": {"a": [1, {"b": None}]}}, True),
    ("dict not a dict", {"extra": [1]}, False),
    ("dict of int", {"counts": {"a": "1"}}, True),
    ("dict of int bad", {"counts": {"a": "x"}}, False),
    ("nested model", {"person": VALID_PERSON}, True),
    (
        "nested model full",
        {
            "person": {
                **VALID_PERSON,
                "score": 1.5,
                "tags": ["x"],
                "ident": str(uuid.UUID(int=1)),
                "wake_up": "07:30:00",
                "address": {"street": "Main", "zip_code": "12345"},
            }
        },
        True,
    ),
    ("nested ge", {"person": {**VALID_PERSON, "age": -1}}, False),
    ("nested lt", {"person": {**VALID_PERSON, "age": 150}}, False),
    ("nested max_length", {"person": {**VALID_PERSON, "name": "x" * 21}}, False),
    ("nested multiple_of", {"person": {**VALID_PERSON, "score": 0.3}}, False),
    ("nested list max_length", {"person": {**VALID_PERSON, "tags": ["a", "b", "c", "d"]}}, False),
    ("nested uuid bad", {"person": {**VALID_PERSON, "ident": "not-a-uuid"}}, False),
    ("nested time bad", {"person": {**VALID_PERSON, "wake_up": "25:00"}}, False),
    ("nested missing", {"person": {"name": "Ada"}}, False),
    ("nested extra ignored", {"person": {**VALID_PERSON, "unknown": 1}}, True),
    ("deep pattern", {"person": {**VALID_PERSON, "address": {"street": "Main", "zip_code": "1234"}}}, False),
    ("deep min_length", {"person": {**VALID_PERSON, "address": {"street": "", "zip_code": "12345"}}}, False),
    (
        "deep literal",
        {"person": {**VALID_PERSON, "address": {"street": "M", "zip_code": "12345", "country": "it"}}},
        False,
    ),
    (
        "deep extra forbidden",
        {"person": {**VALID_PERSON, "address": {"street": "M", "zip_code": "12345", "x": 1}}},
        False,
    ),
    ("list of models", {"people": [VALID_PERSON, {"name": "Bob", "age": 1}]}, True),
    ("list of models bad", {"people": [VALID_PERSON, {"name": "Bob"}]}, False),
    ("extra allowed", {"loose": {"kind": "k", "anything": [1]}}, True),
    ("extra allowed still checks", {"loose": {"anything": 1}}, False),
    ("recursive", {"tree": {"label": "root", "children": [{"label": "leaf"}]}}, True),
    ("recursive top level bad", {"tree": {"children": []}}, False),
    ("aliases", {"aliased": {"firstName": "Ada", "@type": "person"}}, True),
    ("aliases missing", {"aliased": {"first_name": "Ada"}}, False),
    ("annotated ok", {"bounded": "10"}, True),
    ("annotated too big", {"bounded": 11}, False),
    ("annotated too small", {"bounded": 0}, False),
    ("string constraints ok", {"code": "ABC"}, True),
    ("string too long", {"code": "ABCDE"}, False),
    ("string pattern", {"code": "ab"}, False),
    ("implicit optional", {"note": None}, True),
    ("required is not nullable", {"text": None}, False),
]


@pytest.fixture(scope="module")
def models() -> tuple[type[BaseModel], type[BaseModel]]:
    definition = everything.__bifrost_definition__  # type: ignore[attr-defined]
    # The web process only has the stored JSON: go through a JSON round trip.
    schema = json.loads(json.dumps(definition.params_schema))
    return definition.params_model, model_from_json_schema(schema, "everything_rebuilt")


def _outcome(model: type[BaseModel], params: dict[str, Any], exclude_unset: bool = False) -> tuple[bool, Any]:
    try:
        return True, validate_parameters(model, params).model_dump(
            mode="json", by_alias=True, exclude_unset=exclude_unset
        )
    except ValidationError as exc:
        return False, sorted(e["field"] for e in exc.errors)


@pytest.mark.parametrize(("label", "params", "accepted"), CASES, ids=[c[0] for c in CASES])
def test_rebuilt_model_accepts_and_rejects_like_the_original(
    models: tuple[type[BaseModel], type[BaseModel]], label: str, params: dict[str, Any], accepted: bool
) -> None:
    original, rebuilt = models
    payload = {k: v for k, v in {**BASE, **params}.items() if v is not DROP}
    # A self-referencing model is only checked one level deep, so the unset
    # defaults of deeper levels are not filled in: compare what was given.
    exclude_unset = label.startswith("recursive")
    original_ok, original_result = _outcome(original, payload, exclude_unset)
    rebuilt_ok, rebuilt_result = _outcome(rebuilt, payload, exclude_unset)
    assert original_ok is accepted, f"{label}: the original model {'rejected' if accepted else 'accepted'} it"
    assert rebuilt_ok is accepted, f"{label}: the rebuilt model disagrees with the original"
    if accepted:
        # Same coerced values, so what the web process stores is what the worker would compute.
        assert rebuilt_result == original_result
    else:
        assert rebuilt_result == original_result, "the same fields are reported"


def test_rebuilt_values_validate_again_in_the_worker(models: tuple[type[BaseModel], type[BaseModel]]) -> None:
    original, rebuilt = models
    web = validate_parameters(rebuilt, {**BASE, "count": "3", "priority": "2", "day": "2024-01-02"})
    stored = json.loads(json.dumps(web.model_dump(mode="json", by_alias=True)))
    worker = validate_parameters(original, stored)
    assert worker.priority is Priority.HIGH  # type: ignore[attr-defined]
    assert worker.day == dt.date(2024, 1, 2)  # type: ignore[attr-defined]


def test_rebuild_keeps_descriptions_and_required() -> None:
    @workflow
    async def described(email: str, limit: int = 10) -> None:
        """Described.

        Args:
            email: Where to write.
        """

    rebuilt = model_from_json_schema(described.__bifrost_definition__.params_schema)  # type: ignore[attr-defined]
    assert rebuilt.model_fields["email"].description == "Where to write."
    assert rebuilt.model_fields["email"].is_required()
    assert rebuilt.model_fields["limit"].default == 10


def test_known_approximations_are_lenient_never_stricter() -> None:
    class PlainIntEnum(enum.Enum):
        ONE = 1

    class WithDecimal(BaseModel):
        amount: Decimal

    original = validate_parameters  # for readability below
    schema_enum = {"$defs": {"P": {"enum": [1], "title": "P", "type": "integer"}},
                   "properties": {"p": {"$ref": "#/$defs/P"}}, "required": ["p"], "type": "object"}  # fmt: skip
    rebuilt = model_from_json_schema(schema_enum)
    # A plain Enum with int values is rebuilt like an IntEnum: "1" is accepted and coerced to 1.
    assert original(rebuilt, {"p": "1"}).model_dump(mode="json") == {"p": 1}
    with pytest.raises(ValidationError):
        original(rebuilt, {"p": 2})
    decimal_model = model_from_json_schema(WithDecimal.model_json_schema())
    assert original(decimal_model, {"amount": "1.5"}).model_dump(mode="json") == {"amount": "1.5"}
    with pytest.raises(ValidationError):
        original(decimal_model, {"amount": [1]})


def test_rebuilt_field_names_are_the_parameter_names() -> None:
    @workflow
    async def shadowing(json: str, copy: bool = False, schema: dict | None = None, model_name: str = "m") -> None: ...

    definition = shadowing.__bifrost_definition__  # type: ignore[attr-defined]
    rebuilt = model_from_json_schema(definition.params_schema)
    assert list(rebuilt.model_fields) == ["json", "copy", "schema", "model_name"]
    given = {"json": "{}", "copy": "yes", "schema": {"a": 1}}
    # Dumped without by_alias, as a caller forwarding the values would.
    assert (
        validate_parameters(rebuilt, given).model_dump()
        == validate_parameters(definition.params_model, given).model_dump()
    )
