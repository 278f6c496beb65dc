"""Form fields for running a workflow: built from its parameters, read back from a submitted form.

A field is a dict with the keys of a ``form_schema`` field (see ``app/services/forms/schema.py``):
``name, type, label, help_text, placeholder, required, default, validation, options,
data_provider, data_provider_inputs, visible_when``. The automatic form of a workflow is built
here from its stored parameters; a custom form's ``form_schema`` has the same shape, so the
renderer (``templates/partials/_field.html``) and :func:`params_from_values` take either.

Values travel as the browser sends them: text for most inputs, a boolean for a checkbox and a
list of texts for a multi-select. They are kept as typed (so a form with errors shows the
user's own input) and converted to parameters only on submit; the workflow's own parameter
model then validates them on the one submit path.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from app.web.pages.json_input import example_object, read_json

# Parameter type (bifrost._schema.ParameterSpec.type) -> field type.
_TYPE_BY_PARAMETER = {
    "string": "text",
    "integer": "number",
    "number": "number",
    "boolean": "checkbox",
    "date": "date",
    "datetime": "datetime",
}
CHOICE_TYPES = frozenset({"select", "radio", "multi_select"})


def label_of(name: str) -> str:
    """``start_date`` -> ``Start date``."""
    return name.replace("_", " ").strip().capitalize() or name


def option_key(value: Any) -> str:
    """The text an option value travels as in HTML (``"eng"``, ``"3"``, ``"true"``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _extras(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Form hints an author put in the parameter's schema (``Field(json_schema_extra=...)``).

    An optional parameter's hints may sit on the ``anyOf`` branch instead of the top level.
    """
    found: dict[str, Any] = {}
    for branch in json_schema.get("anyOf") or []:
        if isinstance(branch, dict):
            found.update({k: v for k, v in branch.items() if k in ("data_provider", "data_provider_inputs")})
    found.update({k: v for k, v in json_schema.items() if k in ("data_provider", "data_provider_inputs")})
    return found


def _inner(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of ``X | None`` (where bounds live)."""
    options = json_schema.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(non_null) == 1:
            return {**non_null[0], **{k: v for k, v in json_schema.items() if k != "anyOf"}}
    return json_schema


def _provider_inputs(raw: Any) -> dict[str, dict[str, Any]]:
    """Normalise ``{"arg": "field"}`` shorthand to ``{"arg": {"field": "field"}}``."""
    if not isinstance(raw, dict):
        return {}
    inputs: dict[str, dict[str, Any]] = {}
    for arg, source in raw.items():
        if isinstance(source, str):
            inputs[str(arg)] = {"field": source}
        elif isinstance(source, dict) and ("field" in source or "value" in source):
            inputs[str(arg)] = {k: source[k] for k in ("field", "value") if k in source}
    return inputs


def field_from_parameter(parameter: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One form field for one stored parameter (``bifrost._schema.ParameterSpec`` dict).

    ``defs`` are the workflow schema's ``$defs``: a model parameter's schema only refers to them.
    """
    kind = parameter.get("type", "string")
    schema = parameter.get("json_schema") or {}
    extras = _extras(schema)
    inner = _inner(schema)
    choices = parameter.get("choices")
    field: dict[str, Any] = {
        "name": parameter["name"],
        "label": label_of(parameter["name"]),
        "help_text": parameter.get("description"),
        "placeholder": None,
        "required": bool(parameter.get("required")),
        "default": parameter.get("default"),
        "validation": None,
        "options": None,
        "data_provider": None,
        "data_provider_inputs": {},
        "visible_when": None,
        # How a textarea's text becomes a value: "json" (objects), "lines" (lists), None (text).
        "parse": None,
        # Item type of a list parameter: options of a multi-select are converted to it.
        "items": parameter.get("items"),
    }
    provider = extras.get("data_provider")
    if isinstance(provider, str) and provider and kind in ("string", "integer", "number", "array", "enum"):
        field["type"] = "multi_select" if kind == "array" else "select"
        field["data_provider"] = provider
        field["data_provider_inputs"] = _provider_inputs(extras.get("data_provider_inputs"))
    elif kind == "enum" and choices:
        field["type"] = "select"
        field["options"] = [{"label": str(c), "value": c} for c in choices]
    elif kind == "array" and choices:
        field["type"] = "multi_select"
        field["options"] = [{"label": str(c), "value": c} for c in choices]
    elif kind == "array":
        field["type"] = "textarea"
        field["parse"] = "lines"
        field["placeholder"] = "One per line (or a JSON list)"
    elif kind == "object":
        # A JSON editor: the example names the object's own keys; app.js checks the text as it is typed.
        field["type"] = "textarea"
        field["parse"] = "json"
        ref = str(inner.get("$ref", ""))
        field["example"] = example_object((defs or {}).get(ref.rsplit("/", 1)[-1]) if ref else inner)
        field["placeholder"] = field["example"]
    else:
        field["type"] = _TYPE_BY_PARAMETER.get(kind, "text")
    bounds = {
        "min": inner.get("minimum", inner.get("minLength")),
        "max": inner.get("maximum", inner.get("maxLength")),
        "pattern": inner.get("pattern"),
        "integer": kind == "integer",
    }
    if any(v is not None for k, v in bounds.items() if k != "integer") or kind == "integer":
        field["validation"] = bounds
    return field


def fields_from_parameters(
    parameters: list[dict[str, Any]], defs: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The automatic form of a workflow: one field per parameter, in signature order (``defs``: see above)."""
    return [field_from_parameter(p, defs) for p in parameters]


# ----- values -------------------------------------------------------------------------------------
def _as_input_text(field: dict[str, Any], value: Any) -> str:
    """A stored value (default, previous run's input) as the text its input shows."""
    if value is None:
        return ""
    if field["type"] == "textarea" and field["parse"]:
        if field["parse"] == "lines" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n".join(value)
        return json.dumps(value, indent=2)
    if field["type"] == "datetime" and isinstance(value, str):
        # datetime-local inputs take no time zone: show the wall time as given.
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None).isoformat(timespec="minutes")
        except ValueError:
            return value
    if field["type"] == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return value
    return option_key(value)


def initial_values(fields: list[dict[str, Any]], given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Input values for a fresh form: ``given`` (e.g. a previous run's parameters), else defaults."""
    values: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        value = (given or {}).get(name, field.get("default")) if given is not None else field.get("default")
        if field["type"] == "checkbox":
            values[name] = bool(value)
        elif field["type"] == "multi_select":
            values[name] = [option_key(v) for v in value] if isinstance(value, list) else []
        else:
            values[name] = _as_input_text(field, value)
    return values


def values_from_form(fields: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """The user's input as submitted (``form``: a multi-dict with ``get`` and ``getall``)."""
    values: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if field["type"] == "checkbox":
            values[name] = form.get(name) not in (None, "", "false", "off")
        elif field["type"] == "multi_select":
            values[name] = [str(v) for v in form.getall(name, [])] if name in form else []
        else:
            raw = form.get(name)
            values[name] = raw if isinstance(raw, str) else ""
    return values


def _choice(field: dict[str, Any], text: str) -> Any:
    """Map an option's HTML text back to the option's own value (``"3"`` -> ``3`` for ``Literal[3]``)."""
    for option in field.get("options") or ():
        if option_key(option["value"]) == text:
            return option["value"]
    return text  # not an option: the workflow's validation reports it


def _parse_text(field: dict[str, Any], text: str) -> tuple[Any, str | None]:
    if field["parse"] == "json":
        return read_json(text, "object", field.get("example", ""))
    if field["parse"] == "lines" and text.lstrip()[:1] == "[":
        return read_json(text, "array", '["first", "second"]')
    if field["parse"] == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()], None
    return text, None


def params_from_values(fields: list[dict[str, Any]], values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn input values into workflow parameters.

    Empty inputs are left out, so the workflow's defaults apply (and a required parameter is
    reported missing by its validation). Text that must be JSON and is not becomes an error
    here, since no workflow type could accept it.

    Returns:
        ``(params, errors)``: parameters by name, and error messages by field name.
    """
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        name, kind = field["name"], field["type"]
        value = values.get(name)
        if kind == "markdown":
            continue
        if kind == "checkbox":
            params[name] = bool(value)
        elif kind == "multi_select":
            chosen = [_choice(field, v) for v in value or []]
            if chosen or field.get("required"):
                params[name] = chosen
        elif isinstance(value, str) and value.strip():
            if kind in ("select", "radio"):
                params[name] = _choice(field, value)
            elif kind == "textarea" and field.get("parse"):
                parsed, problem = _parse_text(field, value)
                if problem:
                    errors[name] = problem
                else:
                    params[name] = parsed
            else:
                params[name] = value
    return params, errors


def errors_by_field(errors: list[dict[str, Any]], names: set[str]) -> tuple[dict[str, str], list[str]]:
    """Split validation errors (``[{"field": "point.x", "message": ...}]``) into per-field and general ones."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for error in errors:
        path = str(error.get("field", ""))
        top, _, rest = path.partition(".")
        message = str(error.get("message", "is not valid"))
        if top in names:
            text = f"{rest}: {message}" if rest else message
            by_field[top] = f"{by_field[top]}; {text}" if top in by_field else text
        else:
            general.append(f"{path}: {message}" if path else message)
    return by_field, general
