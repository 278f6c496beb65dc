"""@workflow and @data_provider: options, registration and parameter inference."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from bifrost import _registry, data_provider, workflow
from bifrost._schema import validate_parameters
from bifrost.errors import ValidationError, WorkflowDefinitionError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    street: str
    zip_code: str = Field(min_length=5, max_length=5)


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    address: Address | None = None


def definition(fn: Callable[..., Any]) -> Any:
    return fn.__bifrost_definition__  # type: ignore[attr-defined]


def spec_of(fn: Callable[..., Any], name: str) -> Any:
    return next(p for p in definition(fn).parameters if p.name == name)


# --- @workflow options ----------------------------------------------------------------------


async def test_bare_workflow_has_the_spec_defaults_and_stays_the_same_function() -> None:
    async def create_user(email: str, name: str) -> dict[str, str]:
        """Create a new user in the system."""
        return {"user_id": "123", "email": email, "name": name}

    decorated = workflow(create_user)
    assert decorated is create_user
    assert await create_user("a@b.c", name="A") == {"user_id": "123", "email": "a@b.c", "name": "A"}
    d = definition(create_user)
    assert d.kind == "workflow"
    assert d.name == "create_user"
    assert d.description == "Create a new user in the system."
    assert d.category == "General"
    assert d.tags == []
    assert d.timeout_seconds == 1800
    assert d.schedule is None
    assert d.endpoint_enabled is False
    assert d.allowed_methods == ["POST"]
    assert d.public_endpoint is False
    assert d.execution_mode == "async"
    assert d.execution_mode_explicit is False
    assert d.is_tool is False
    assert d.tool_description is None
    assert d.time_saved == 0
    assert d.module == __name__
    assert d.source_file == __file__
    assert _registry.get("create_user") is d


async def test_workflow_with_every_option() -> None:
    @workflow(
        name="onboard",
        description="Onboard someone",
        category="User Management",
        tags=["users", "hr"],
        execution_mode="async",
        timeout_seconds=60,
        schedule="0 9 * * *",
        endpoint_enabled=True,
        allowed_methods=["get", "POST"],
        public_endpoint=True,
        is_tool=True,
        tool_description="Use to onboard a user",
        time_saved=15,
    )
    async def create_user(email: str) -> str:
        """Docstring description loses against the option."""
        return email.upper()

    assert await create_user(email="x") == "X"
    d = definition(create_user)
    assert (d.name, d.description, d.category, d.tags) == (
        "onboard",
        "Onboard someone",
        "User Management",
        ["users", "hr"],
    )
    assert (d.timeout_seconds, d.schedule, d.endpoint_enabled, d.public_endpoint) == (60, "0 9 * * *", True, True)
    assert d.allowed_methods == ["GET", "POST"]
    assert (d.execution_mode, d.execution_mode_explicit) == ("async", True)
    assert (d.is_tool, d.tool_description, d.time_saved) == (True, "Use to onboard a user", 15)
    assert _registry.get("onboard") is d
    assert _registry.get("create_user") is None


def test_execution_mode_auto_follows_endpoint_enabled() -> None:
    @workflow(endpoint_enabled=True)
    async def hook() -> None: ...

    @workflow()
    async def batch() -> None: ...

    @workflow(endpoint_enabled=True, execution_mode="async")
    async def slow_hook() -> None: ...

    assert definition(hook).execution_mode == "sync"
    assert definition(batch).execution_mode == "async"
    assert definition(slow_hook).execution_mode == "async"


def test_tags_list_is_copied_not_shared() -> None:
    tags = ["a"]

    @workflow(tags=tags)
    async def first() -> None: ...

    tags.append("b")
    assert definition(first).tags == ["a"]


def test_metadata_is_json_able_and_complete() -> None:
    import json

    @workflow(category="Reports", tags=["x"])
    async def report(day: dt.date, color: Color = Color.RED) -> None:
        """Build the report.

        Args:
            day: Which day.
        """

    meta = definition(report).to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["category"] == "Reports"
    assert [p["name"] for p in meta["parameters"]] == ["day", "color"]
    assert meta["parameters"][1]["default"] == "red"
    assert meta["params_schema"]["required"] == ["day"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"execution_mode": "later"}, "execution_mode must be 'sync' or 'async'"),
        ({"timeout_seconds": 0}, "timeout_seconds must be a positive integer"),
        ({"timeout_seconds": True}, "timeout_seconds must be a positive integer"),
        ({"schedule": "every day"}, "schedule must be a cron expression"),
        ({"allowed_methods": []}, "allowed_methods must be a non-empty list"),
        ({"allowed_methods": ["FETCH"]}, "allowed_methods has 'FETCH'"),
        ({"tags": "a,b"}, "tags must be a list of strings"),
        ({"time_saved": -1}, "time_saved must be a whole number"),
        ({"name": "  "}, "name must be a non-empty string"),
    ],
)
def test_invalid_options_fail_at_decoration_naming_the_function(options: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message) as info:

        @workflow(**options)
        async def broken() -> None: ...

    assert "broken" in str(info.value)


def test_redecorating_the_same_function_replaces_the_registration() -> None:
    def make(category: str) -> Any:
        @workflow(category=category)
        async def same_name() -> None: ...

        return same_name

    make("One")
    make("Two")
    registered = [d for d in _registry.definitions("workflow") if d.name == "same_name"]
    assert [d.category for d in registered] == ["Two"]


# --- @data_provider -------------------------------------------------------------------------


async def test_data_provider_bare_and_with_options() -> None:
    @data_provider
    async def departments() -> list[dict[str, str]]:
        """List available departments."""
        return [{"label": "Engineering", "value": "eng"}]

    @data_provider(name="get_regions", description="List regions", cache_ttl_seconds=600)
    async def regions() -> list[dict[str, str]]:
        return [{"label": "EU", "value": "eu"}]

    assert await departments() == [{"label": "Engineering", "value": "eng"}]
    d = definition(departments)
    assert (d.kind, d.name, d.description, d.cache_ttl_seconds) == (
        "data_provider",
        "departments",
        "List available departments.",
        300,
    )
    r = definition(regions)
    assert (r.name, r.description, r.cache_ttl_seconds) == ("get_regions", "List regions", 600)
    assert _registry.get("get_regions", kind="data_provider") is r
    assert _registry.get("get_regions") is None, "data providers are not workflows"


async def test_data_provider_with_parameters_for_cascading_fields() -> None:
    @data_provider()
    async def cities(country: Literal["de", "fr"], limit: int = 10) -> list[dict[str, str]]:
        """Cities of a country.

        Args:
            country: Country code chosen in another field.
        """
        names = {"de": ["Berlin", "Bonn"], "fr": ["Paris"]}[country][:limit]
        return [{"label": n, "value": n.lower()} for n in names]

    d = definition(cities)
    assert [(p.name, p.type, p.required, p.choices) for p in d.parameters] == [
        ("country", "enum", True, ["de", "fr"]),
        ("limit", "integer", False, None),
    ]
    assert spec_of(cities, "country").description == "Country code chosen in another field."
    validated = validate_parameters(d.params_model, {"country": "de", "limit": "1"})
    assert await cities(**validated.model_dump()) == [{"label": "Berlin", "value": "berlin"}]


def test_data_provider_refuses_bad_definitions() -> None:
    with pytest.raises(WorkflowDefinitionError, match="cache_ttl_seconds"):
        data_provider(cache_ttl_seconds=-1)
    with pytest.raises(WorkflowDefinitionError, match=r"sync_provider.*async def"):

        @data_provider
        def sync_provider() -> list[Any]:
            return []

    with pytest.raises(WorkflowDefinitionError, match=r"options.*'tags'.*set\[str\]"):

        @data_provider
        async def options(tags: set[str]) -> list[Any]:
            return []


# --- schema inference -----------------------------------------------------------------------


async def test_inference_of_every_supported_type() -> None:
    @workflow
    async def everything(
        text: str,
        count: int,
        ratio: float,
        flag: bool,
        day: dt.date,
        moment: dt.datetime,
        size: Literal["s", "m", "l"],
        color: Color,
        names: list[str],
        extra: dict,
        person: Person,
        numbers: list[int] = [1, 2],  # noqa: B006 - defaults are copied by pydantic
        colors: list[Color] | None = None,
        note: Optional[str] = None,  # noqa: UP045 - the old spelling must work too
        counts: dict[str, int] | None = None,
        level: Priority = Priority.LOW,
        bare: list = [],  # noqa: B006
    ) -> None: ...

    expected = {
        "text": ("string", True, None, None, False),
        "count": ("integer", True, None, None, False),
        "ratio": ("number", True, None, None, False),
        "flag": ("boolean", True, None, None, False),
        "day": ("date", True, None, None, False),
        "moment": ("datetime", True, None, None, False),
        "size": ("enum", True, ["s", "m", "l"], None, False),
        "color": ("enum", True, ["red", "blue"], None, False),
        "names": ("array", True, None, "string", False),
        "extra": ("object", True, None, None, False),
        "person": ("object", True, None, None, False),
        "numbers": ("array", False, None, "integer", False),
        "colors": ("array", False, ["red", "blue"], "enum", True),
        "note": ("string", False, None, None, True),
        "counts": ("object", False, None, None, True),
        "level": ("enum", False, [1, 2], None, False),
        "bare": ("array", False, None, "string", False),
    }
    d = definition(everything)
    actual = {p.name: (p.type, p.required, p.choices, p.items, p.nullable) for p in d.parameters}
    assert actual == expected
    assert spec_of(everything, "numbers").default == [1, 2]
    assert spec_of(everything, "level").default == 1
    assert set(d.params_schema["required"]) == {n for n, v in expected.items() if v[1]}
    assert d.params_schema["properties"]["day"]["format"] == "date"
    assert d.params_schema["properties"]["moment"]["format"] == "date-time"
    assert spec_of(everything, "person").json_schema == {"$ref": "#/$defs/Person"}
    assert set(d.params_schema["$defs"]) >= {"Person", "Address", "Color"}


def test_validation_coerces_like_the_platform() -> None:
    @workflow
    async def typed(
        count: int,
        day: dt.date,
        moment: dt.datetime,
        flag: bool,
        ratio: float,
        color: Color,
        person: Person,
        level: Priority = Priority.LOW,
        tags: list[str] | None = None,
    ) -> None: ...

    model = definition(typed).params_model
    values = validate_parameters(
        model,
        {
            "count": "5",
            "day": "2024-03-01",
            "moment": "2024-03-01T10:30:00+00:00",
            "flag": "true",
            "ratio": "0.5",
            "color": "blue",
            "person": {"name": "Ada", "age": "36", "address": {"street": "Main", "zip_code": "12345"}},
            "level": "2",
        },
    )
    assert values.count == 5  # type: ignore[attr-defined]
    assert values.day == dt.date(2024, 3, 1)  # type: ignore[attr-defined]
    assert values.moment == dt.datetime(2024, 3, 1, 10, 30, tzinfo=dt.UTC)  # type: ignore[attr-defined]
    assert values.flag is True  # type: ignore[attr-defined]
    assert values.ratio == 0.5  # type: ignore[attr-defined]
    assert values.color is Color.BLUE  # type: ignore[attr-defined]
    assert isinstance(values.person, Person) and values.person.address == Address(street="Main", zip_code="12345")  # type: ignore[attr-defined]
    assert values.level is Priority.HIGH  # type: ignore[attr-defined]
    assert values.tags is None  # type: ignore[attr-defined]


def test_validation_errors_name_each_field() -> None:
    @workflow
    async def strict(count: int, color: Color, person: Person) -> None: ...

    with pytest.raises(ValidationError) as info:
        validate_parameters(
            definition(strict).params_model,
            {"count": "many", "color": "green", "person": {"name": "A", "age": -1}, "x": 1},
        )
    fields = {e["field"]: e["message"] for e in info.value.errors}
    assert set(fields) == {"count", "color", "person.age", "x"}
    assert fields["x"] == "unknown parameter"
    assert "count" in str(info.value) and "person.age" in str(info.value)

    with pytest.raises(ValidationError) as missing:
        validate_parameters(definition(strict).params_model, None)
    assert {e["field"]: e["message"] for e in missing.value.errors} == {
        "count": "this parameter is required",
        "color": "this parameter is required",
        "person": "this parameter is required",
    }


def test_defaults_and_optionals() -> None:
    @workflow
    async def defaults(
        a: str = "x",
        b: int | None = None,
        c: str = None,  # type: ignore[assignment]  # noqa: RUF013 - implicit Optional, common in author code
        d=3,
        e=None,
        f: Color = Color.BLUE,
        g: dt.date = dt.date(2024, 1, 31),
    ) -> None: ...

    d_ = definition(defaults)
    summary = {p.name: (p.type, p.required, p.default, p.nullable) for p in d_.parameters}
    assert summary == {
        "a": ("string", False, "x", False),
        "b": ("integer", False, None, True),
        "c": ("string", False, None, True),
        "d": ("integer", False, 3, False),
        "e": ("string", False, None, True),
        "f": ("enum", False, "blue", False),
        "g": ("date", False, "2024-01-31", False),
    }
    model = d_.params_model
    assert validate_parameters(model, {}).model_dump() == {
        "a": "x", "b": None, "c": None, "d": 3, "e": None, "f": Color.BLUE, "g": dt.date(2024, 1, 31),
    }  # fmt: skip
    # A parameter defaulting to None accepts an explicit None (JSON null from the API or an LLM).
    assert validate_parameters(model, {"c": None, "e": None}).c is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        validate_parameters(model, {"a": None})
    with pytest.raises(ValidationError):
        validate_parameters(model, {"d": "three"})


def test_annotated_constraints_are_kept() -> None:
    @workflow
    async def constrained(count: Annotated[int, Field(ge=1, le=10, description="How many")] = 5) -> None: ...

    spec = spec_of(constrained, "count")
    assert (spec.type, spec.default, spec.description) == ("integer", 5, "How many")
    assert spec.json_schema["minimum"] == 1 and spec.json_schema["maximum"] == 10
    model = definition(constrained).params_model
    assert validate_parameters(model, {"count": "10"}).count == 10  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        validate_parameters(model, {"count": 11})


def test_parameter_names_that_shadow_basemodel_methods_work() -> None:
    @workflow
    async def shadowing(json: str, copy: bool = False, model_name: str = "gpt") -> None: ...

    values = validate_parameters(definition(shadowing).params_model, {"json": "{}", "copy": "yes"})
    assert (values.json, values.copy, values.model_name) == ("{}", True, "gpt")  # type: ignore[attr-defined]


def test_google_docstring_args_become_descriptions() -> None:
    @workflow
    async def documented(email: str, name: str, department: str = "General", notes: str = "") -> None:
        """Create a new user with department assignment.

        Second paragraph of the description.

        Args:
            email: The user's email address.
            name (str): Display name,
                continued on the next line.
            department: Department code.

        Returns:
            Nothing.

        Raises:
            UserError: never: ignored.
        """

    d = definition(documented)
    assert d.description == "Create a new user with department assignment.\n\nSecond paragraph of the description."
    assert {p.name: p.description for p in d.parameters} == {
        "email": "The user's email address.",
        "name": "Display name, continued on the next line.",
        "department": "Department code.",
        "notes": None,
    }
    assert d.params_schema["properties"]["email"]["description"] == "The user's email address."


def test_no_docstring_means_no_description() -> None:
    @workflow
    async def silent(x: int) -> None: ...

    assert definition(silent).description is None
    assert spec_of(silent, "x").description is None


# --- errors at decoration time --------------------------------------------------------------


def test_sync_function_is_refused_naming_it() -> None:
    with pytest.raises(
        WorkflowDefinitionError, match=r"'test_sync_function_is_refused_naming_it.<locals>.plain'.*async def"
    ):

        @workflow
        def plain(x: int) -> int:
            return x


def test_non_function_is_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="must decorate a function"):
        workflow(42)


async def _star_args(*items: str) -> None: ...
async def _star_kwargs(**options: str) -> None: ...
async def _set_param(ids: set[int]) -> None: ...
async def _object_param(thing: object) -> None: ...
async def _callable_param(callback: Callable[[int], int]) -> None: ...
async def _union_param(value: int | str) -> None: ...
async def _union_optional_param(value: int | str | None = None) -> None: ...
async def _positional_only(value: int, /) -> None: ...
async def _list_of_lists(grid: list[list[int]]) -> None: ...
async def _int_keys(mapping: dict[int, str]) -> None: ...
async def _tuple_param(pair: tuple[int, int]) -> None: ...
async def _any_param(anything: Any) -> None: ...
async def _bad_literal(kind: Literal[b"x"]) -> None: ...
async def _underscore(_private: int) -> None: ...
async def _reserved(model_config: str) -> None: ...
async def _unjsonable_default(when: str = object()) -> None: ...  # type: ignore[assignment]
async def _unresolvable(x: DoesNotExist) -> None: ...  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("func", "parameter", "reason"),
    [
        (_star_args, "items", r"\*args/\*\*kwargs"),
        (_star_kwargs, "options", r"\*args/\*\*kwargs"),
        (_set_param, "ids", r"set\[int\].*not supported"),
        (_object_param, "thing", "object.*not supported"),
        (_callable_param, "callback", "Callable.*not supported"),
        (_union_param, "value", "unions of several types"),
        (_union_optional_param, "value", "unions of several types"),
        (_positional_only, "value", "positional-only"),
        (_list_of_lists, "grid", "lists of lists"),
        (_int_keys, "mapping", "dict keys must be str"),
        (_tuple_param, "pair", "tuple.*not supported"),
        (_any_param, "anything", "not supported"),
        (_bad_literal, "kind", "Literal choices"),
        (_underscore, "_private", "underscore"),
        (_reserved, "model_config", "reserved by pydantic"),
        (_unjsonable_default, "when", "not JSON-serialisable"),
    ],
)
@pytest.mark.parametrize("decorator", [workflow, data_provider], ids=["workflow", "data_provider"])
def test_unsupported_parameters_fail_naming_function_and_parameter(
    decorator: Callable[..., Any], func: Callable[..., Any], parameter: str, reason: str
) -> None:
    with pytest.raises(WorkflowDefinitionError, match=reason) as info:
        decorator(func)
    message = str(info.value)
    assert func.__name__ in message
    assert repr(parameter) in message
    assert not hasattr(func, "__bifrost_definition__")
    assert _registry.get(func.__name__) is None


def test_unresolvable_annotation_names_the_function() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"_unresolvable.*DoesNotExist"):
        workflow(_unresolvable)
