"""The ``form_schema`` of a form: its fields, validated before anything is stored.

A schema is ``{"fields": [...]}``. Each field has a ``name`` (the workflow
parameter it fills), a ``type`` and presentation, validation, choice and
visibility settings. :func:`validate_form_schema` checks a submitted schema and
returns it normalised (every key present); every problem is reported at once as
an :class:`InvalidInputError` whose ``errors`` name the exact path, e.g.
``form_schema.fields[2].options``.

:func:`schema_from_workflow` builds a schema from a workflow's stored parameters
(what the form builder starts from, and what a workflow without a custom form
shows).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from app.services.errors import InvalidInputError

FieldType = Literal[
    # the SDK's FormFieldType values
    "text",
    "number",
    "select",
    "checkbox",
    "date",
    # added by the web app
    "textarea",
    "email",
    "multi_select",
    "radio",
    "datetime",
    "file",
    "markdown",
]
CHOICE_TYPES = frozenset({"select", "radio", "multi_select"})
TEXT_TYPES = frozenset({"text", "textarea", "email"})
# Types whose ``validation`` min/max bound something: a number's value, a text's length.
BOUNDED_TYPES = TEXT_TYPES | {"number"}

MAX_FIELDS = 200
MAX_OPTIONS = 1000
MAX_SCHEMA_BYTES = 256 * 1024
_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"

Scalar = str | int | float | bool


class _Strict(BaseModel):
    # Strict: "true" is not a boolean and 1 is not a string; unknown keys are typos, not data.
    model_config = ConfigDict(extra="forbid", strict=True)


class FieldOption(_Strict):
    """One choice of a select, radio or multi-select field."""

    label: str = Field(min_length=1, max_length=200)
    value: Scalar


class FieldValidation(_Strict):
    """Bounds and pattern, with the message shown when they fail.

    For ``number`` fields ``min``/``max`` bound the value; for text fields they
    bound the length (whole, non-negative numbers). ``pattern`` is a regular
    expression the whole text must match (text fields only).
    """

    min: int | float | None = None
    max: int | float | None = None
    pattern: str | None = Field(default=None, max_length=1000)
    message: str | None = Field(default=None, max_length=500)


class DataProviderInput(_Strict):
    """A data provider argument: a fixed ``value``, or the current value of another ``field``."""

    value: Any = None
    field: str | None = None


class VisibleWhen(_Strict):
    """Show the field only when ``field`` has a value (or, with ``equals``, that value)."""

    field: str
    equals: Any = None


class FormField(_Strict):
    """One field of a form."""

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    type: FieldType
    label: str | None = Field(default=None, max_length=200)
    help_text: str | None = Field(default=None, max_length=2000)
    placeholder: str | None = Field(default=None, max_length=200)
    required: bool = False
    default: Any = None
    validation: FieldValidation | None = None
    options: list[FieldOption] | None = Field(default=None, max_length=MAX_OPTIONS)
    data_provider: str | None = Field(default=None, min_length=1, max_length=200)
    data_provider_inputs: dict[str, DataProviderInput] = Field(default_factory=dict)
    visible_when: VisibleWhen | None = None
    content: str | None = Field(default=None, max_length=20000)
    multiple: bool = False
    accept: list[str] | None = Field(default=None, max_length=50)


class FormSchema(_Strict):
    """A whole form: its ordered fields."""

    fields: list[FormField] = Field(default_factory=list, max_length=MAX_FIELDS)


# ----- validation ----------------------------------------------------------------------------------
def _path(loc: tuple[int | str, ...]) -> str:
    path = "form_schema"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "is required"
    return str(error["msg"])


def _named(value: dict[str, Any], loc: tuple[int | str, ...], message: str) -> str:
    """Prefix ``message`` with the name of the form field it is about, when the input has one."""
    if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):
        fields = value.get("fields")
        raw = fields[loc[1]] if isinstance(fields, list) and loc[1] < len(fields) else None
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name:
            return f"field {name[:100]!r}: {message}"
    return message


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_default(field: FormField, values: set[Any] | None) -> str | None:
    """Return why ``field.default`` does not fit the field, or None."""
    value, kind = field.default, field.type
    if kind == "file":
        return "file fields cannot have a default"
    if kind == "number" and not _is_number(value):
        return "must be a number"
    if kind == "checkbox" and not isinstance(value, bool):
        return "must be true or false"
    if kind in TEXT_TYPES and not isinstance(value, str):
        return "must be text"
    if kind == "date":
        try:
            date.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be a date as YYYY-MM-DD"
    if kind == "datetime":
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be an ISO date and time"
    if kind == "multi_select":
        if not isinstance(value, list):
            return "must be a list of option values"
        if values is not None and any(v not in values for v in value):
            return "must list only values of the options"
    if kind in {"select", "radio"} and values is not None and value not in values:
        return "must be one of the option values"
    bounds = field.validation
    if bounds is not None:
        measured = value if kind == "number" else len(value) if kind in TEXT_TYPES else None
        if measured is not None and bounds.min is not None and measured < bounds.min:
            return "is below validation.min"
        if measured is not None and bounds.max is not None and measured > bounds.max:
            return "is above validation.max"
        if kind in TEXT_TYPES and bounds.pattern and re.fullmatch(bounds.pattern, value) is None:
            return "does not match validation.pattern"
    return None


def _check_validation(field: FormField, add: Any) -> bool:
    """Report problems of ``field.validation``; True when it is usable to check the default."""
    bounds = field.validation
    if bounds is None:
        return True
    ok = True
    if field.type not in BOUNDED_TYPES:
        add("validation", f"{field.type} fields take no validation (only number, text, textarea and email do)")
        return False
    for key in ("min", "max"):
        bound = getattr(bounds, key)
        if bound is not None and field.type in TEXT_TYPES and (bound < 0 or bound != int(bound)):
            add(f"validation.{key}", "a text length bound must be a whole number, 0 or more")
            ok = False
    if bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
        add("validation.min", "must not be greater than validation.max")
        ok = False
    if bounds.pattern is not None:
        if field.type == "number":
            add("validation.pattern", "number fields take min and max, not a pattern")
            ok = False
        else:
            try:
                re.compile(bounds.pattern)
            except re.error as exc:
                add("validation.pattern", f"is not a valid regular expression: {exc}")
                ok = False
    return ok


def _check_field(field: FormField, add: Any) -> None:
    """Report problems of one field that concern only that field."""
    kind = field.type
    if kind in CHOICE_TYPES:
        if field.options is None and field.data_provider is None:
            add("options", f"{kind} fields need options or a data_provider")
        if field.options is not None and field.data_provider is not None:
            add("data_provider", "give options or a data_provider, not both")
        if field.options is not None:
            if not field.options:
                add("options", "must list at least one option")
            seen: set[tuple[str, Scalar]] = set()
            for i, option in enumerate(field.options):
                typed = (type(option.value).__name__, option.value)
                if typed in seen:
                    add(f"options[{i}].value", f"duplicate option value {option.value!r}")
                seen.add(typed)
    else:
        for key in ("options", "data_provider"):
            if getattr(field, key) is not None:
                add(key, f"only select, radio and multi_select fields take {key}")
    if field.data_provider_inputs and field.data_provider is None:
        add("data_provider_inputs", "needs a data_provider")
    for arg, source in field.data_provider_inputs.items():
        given = source.model_fields_set & {"value", "field"}
        if len(given) != 1:
            add(f"data_provider_inputs.{arg}", "give either a fixed value or the name of another field")
    if kind == "markdown":
        if not field.content:
            add("content", "markdown fields need content")
        for key in ("required", "placeholder", "default"):
            if key in field.model_fields_set and getattr(field, key) not in (None, False):
                add(key, "markdown fields show text only and take no input")
    elif field.content is not None:
        add("content", "only markdown fields take content")
    if kind != "file":
        for key in ("multiple", "accept"):
            if key in field.model_fields_set and getattr(field, key) not in (None, False):
                add(key, "only file fields take " + key)
    validation_ok = _check_validation(field, add)
    if field.default is not None and kind != "markdown" and validation_ok:
        values = {o.value for o in field.options} if field.options else None
        problem = _check_default(field, values)
        if problem:
            add("default", problem)


def _check_references(schema: FormSchema, add_at: Any) -> None:
    """Report visibility conditions and data provider inputs that point at missing fields."""
    kinds = {f.name: f.type for f in schema.fields}
    for index, field in enumerate(schema.fields):
        if field.visible_when is not None:
            target = field.visible_when.field
            if target == field.name:
                add_at(index, "visible_when.field", "a field cannot depend on itself")
            elif target not in kinds:
                add_at(index, "visible_when.field", f"no field named {target!r} in this form")
            elif kinds[target] == "markdown":
                add_at(index, "visible_when.field", f"{target!r} is markdown text and has no value")
        for arg, source in field.data_provider_inputs.items():
            if source.field is None:
                continue
            if source.field == field.name:
                add_at(index, f"data_provider_inputs.{arg}.field", "a field cannot feed its own data provider")
            elif source.field not in kinds:
                add_at(index, f"data_provider_inputs.{arg}.field", f"no field named {source.field!r} in this form")


def validate_form_schema(value: Any) -> dict[str, Any]:
    """Validate a submitted ``form_schema`` and return it normalised.

    Args:
        value: The schema as decoded from JSON.

    Returns:
        The schema with every key of every field present (JSON-able).

    Raises:
        InvalidInputError: listing every problem, each with its path
            (``form_schema.fields[1].validation.pattern``) and a message that
            names the field.
    """
    if not isinstance(value, dict):
        raise InvalidInputError.field("form_schema", 'must be an object like {"fields": [...]}')
    if len(json.dumps(value, default=str)) > MAX_SCHEMA_BYTES:
        raise InvalidInputError.field("form_schema", f"must be at most {MAX_SCHEMA_BYTES // 1024} KiB of JSON")
    try:
        schema = FormSchema.model_validate(value)
    except PydanticValidationError as exc:
        errors = [
            {"field": _path(e["loc"]), "message": _named(value, e["loc"], _pydantic_message(e))} for e in exc.errors()
        ]
        raise _invalid(errors) from None
    problems: list[dict[str, Any]] = []

    def add_at(index: int, key: str, message: str) -> None:
        name = schema.fields[index].name
        problems.append({"field": f"form_schema.fields[{index}].{key}", "message": f"field {name!r}: {message}"})

    seen: dict[str, int] = {}
    for index, field in enumerate(schema.fields):
        if field.name in seen:
            add_at(index, "name", f"duplicate name (also used by fields[{seen[field.name]}])")
        seen.setdefault(field.name, index)
        _check_field(field, lambda key, message, i=index: add_at(i, key, message))
    _check_references(schema, add_at)
    if problems:
        raise _invalid(problems)
    return schema.model_dump(mode="json")


def _invalid(errors: list[dict[str, Any]]) -> InvalidInputError:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return InvalidInputError(f"Invalid form_schema: {summary}{more}", errors)


def data_providers_used(schema: dict[str, Any] | None) -> list[tuple[int, str]]:
    """``(field index, data provider name)`` of every field of a normalised schema that uses one."""
    if not schema:
        return []
    return [(i, f["data_provider"]) for i, f in enumerate(schema.get("fields", [])) if f.get("data_provider")]


# ----- generated from a workflow -------------------------------------------------------------------
_TYPE_BY_PARAMETER = {
    "string": "text",
    "integer": "number",
    "number": "number",
    "boolean": "checkbox",
    "date": "date",
    "datetime": "datetime",
}


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _field_from_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    kind = parameter.get("type", "string")
    json_schema = parameter.get("json_schema") or {}
    field: dict[str, Any] = {
        "name": parameter["name"],
        "label": _label(parameter["name"]),
        "required": bool(parameter.get("required")),
    }
    if parameter.get("description"):
        field["help_text"] = str(parameter["description"])[:2000]
    choices = parameter.get("choices")
    provider, provider_inputs = _provider_hints(json_schema)
    if provider and kind in ("string", "integer", "number", "array", "enum"):
        # The parameter names its data provider (``Field(json_schema_extra={"data_provider": ...})``): a form
        # made from the workflow keeps it, as the automatic form does (issue 19: it became a text box).
        field["type"] = "multi_select" if kind == "array" else "select"
        field["data_provider"] = provider
        if provider_inputs:
            field["data_provider_inputs"] = provider_inputs
    elif kind == "enum" and choices:
        field["type"] = "select"
        field["options"] = [{"label": str(c), "value": c} for c in choices]
    elif kind == "array" and choices:
        field["type"] = "multi_select"
        field["options"] = [{"label": str(c), "value": c} for c in choices]
    elif kind in ("array", "object"):
        # No dedicated widget: the value is typed as JSON (the workflow's params_schema validates it).
        field["type"] = "textarea"
        field["help_text"] = (field["help_text"] + " (JSON)" if "help_text" in field else "A JSON value.")[:2000]
    else:
        field["type"] = _TYPE_BY_PARAMETER.get(kind, "text")
    bounds = _bounds(field["type"], _inner_schema(json_schema))
    if bounds:
        field["validation"] = bounds
    if not field["required"] and parameter.get("default") is not None and field["type"] != "textarea":
        field["default"] = parameter["default"]
    elif field["type"] == "textarea" and parameter.get("default") not in (None, [], {}):
        field["default"] = json.dumps(parameter["default"])
    return field


def _provider_hints(json_schema: dict[str, Any]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The data provider a parameter's schema names and its inputs (``{"arg": "field"}`` shorthand expanded).

    An optional parameter's hints may sit on its ``anyOf`` branch rather than the top level.
    """
    found: dict[str, Any] = {}
    for branch in json_schema.get("anyOf") or []:
        if isinstance(branch, dict):
            found.update({k: v for k, v in branch.items() if k in ("data_provider", "data_provider_inputs")})
    found.update({k: v for k, v in json_schema.items() if k in ("data_provider", "data_provider_inputs")})
    provider = found.get("data_provider")
    raw = found.get("data_provider_inputs")
    inputs: dict[str, dict[str, Any]] = {}
    for arg, source in raw.items() if isinstance(raw, dict) else []:
        if isinstance(source, str):
            inputs[str(arg)] = {"field": source}
        elif isinstance(source, dict) and ("field" in source or "value" in source):
            inputs[str(arg)] = {k: source[k] for k in ("field", "value") if k in source}
    return (provider if isinstance(provider, str) and provider else None), inputs


def _inner_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional parameter's schema (``X | None`` is an anyOf)."""
    options = json_schema.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(non_null) == 1:
            return non_null[0]
    return json_schema


def _bounds(kind: str, json_schema: dict[str, Any]) -> dict[str, Any] | None:
    """Constraints declared with ``Annotated[..., Field(ge=..., max_length=...)]`` as form validation."""
    if kind == "number":
        low, high = json_schema.get("minimum"), json_schema.get("maximum")
    elif kind in TEXT_TYPES:
        low, high = json_schema.get("minLength"), json_schema.get("maxLength")
    else:
        return None
    pattern = json_schema.get("pattern") if kind in TEXT_TYPES else None
    bounds = {
        k: v
        for k, v in {"min": low, "max": high, "pattern": pattern}.items()
        if v is not None and not isinstance(v, bool)
    }
    return bounds or None


def schema_from_workflow(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Build a valid, normalised ``form_schema`` from a workflow's stored parameters.

    Args:
        parameters: ``Workflow.parameters`` (``bifrost._schema.ParameterSpec`` dicts).

    Returns:
        ``{"fields": [...]}`` with one field per parameter: text, number,
        checkbox, date, datetime, select (``Literal``/``Enum``), multi_select
        (lists of choices) or textarea holding JSON (other lists, dicts and
        models). Help text comes from the docstring, bounds from ``Field``
        constraints, defaults from the signature.
    """
    fields = []
    for parameter in parameters:
        field = _field_from_parameter(parameter)
        # A default or bound the form cannot express (e.g. a default outside its own bounds) is
        # dropped rather than refusing the whole form; the workflow still validates what is submitted.
        for optional in ("default", "validation"):
            try:
                validate_form_schema({"fields": [field]})
                break
            except InvalidInputError:
                field.pop(optional, None)
        fields.append(field)
    return validate_form_schema({"fields": fields})
