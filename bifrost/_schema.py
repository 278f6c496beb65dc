"""Parameter inference: from a function signature to a pydantic model and back.

Workflows and data providers declare their parameters as a plain Python
signature. This module turns that signature into

* a pydantic model used to validate and coerce parameters inside the worker,
* a list of JSON-able :class:`ParameterSpec` records stored by the platform
  (forms, API docs and LLM tool schemas are built from them), and
* back again: :func:`model_from_parameters` rebuilds an equivalent validation
  model from the stored records, so that the web process can validate input
  without importing the workspace.

Only types that can be rendered in a form and validated are accepted; any
other annotation fails at decoration time naming the function and parameter.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic import ValidationError as PydanticValidationError

from bifrost._docstrings import parse_docstring
from bifrost.errors import ValidationError, WorkflowDefinitionError

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dt.date: "date",
    dt.datetime: "datetime",
}


@dataclass
class ParameterSpec:
    """One parameter of a workflow or data provider, as the platform stores it.

    Attributes:
        name: Parameter name.
        type: ``string``, ``integer``, ``number``, ``boolean``, ``date``,
            ``datetime``, ``enum``, ``array``, ``object``.
        required: True when the parameter has no default.
        default: JSON-able default value (None when required or None).
        description: From the docstring's ``Args:`` section.
        choices: Allowed values for ``enum`` (and arrays of enum items).
        items: Item type of an ``array``.
        nullable: True when None is accepted.
        json_schema: The parameter's JSON schema (``$defs`` inlined by reference
            to the top-level model schema).
    """

    name: str
    type: str
    required: bool
    default: Any = None
    description: str | None = None
    choices: list[Any] | None = None
    items: str | None = None
    nullable: bool = False
    json_schema: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form stored by the platform."""
        return asdict(self)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        raise TypeError("unions of several types cannot be rendered as one form field")
    return annotation, False


def _describe(annotation: Any) -> tuple[str, list[Any] | None, str | None]:
    """Classify a (non-optional) annotation: ``(type, choices, item_type)``.

    Raises:
        TypeError: If the annotation cannot be rendered and validated.
    """
    if annotation in _SCALARS:
        return _SCALARS[annotation], None, None
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = list(typing.get_args(annotation))
        if not all(isinstance(c, (str, int, float, bool)) for c in choices):
            raise TypeError("Literal choices must be str, int, float or bool")
        return "enum", choices, None
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        return "enum", [m.value for m in annotation], None
    if annotation is list or origin is list:
        args = typing.get_args(annotation)
        if not args or args[0] is Any:
            return "array", None, "string"
        item_type, choices, _ = _describe(args[0])
        if item_type == "array":
            raise TypeError("lists of lists cannot be rendered as a form field")
        return "array", choices, item_type
    if annotation is dict or origin is dict:
        args = typing.get_args(annotation)
        if args and args[0] is not str:
            raise TypeError("dict keys must be str")
        return "object", None, None
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "object", None, None
    raise TypeError(f"type {annotation!r} is not supported")


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return TypeAdapter(Any).dump_python(value, mode="json")


def infer_parameters(func: Any, *, kind: str = "workflow") -> tuple[type[BaseModel], list[ParameterSpec], dict[str, Any]]:
    """Build the validation model and parameter specs from ``func``'s signature.

    Args:
        func: The decorated function.
        kind: ``"workflow"`` or ``"data provider"``, used in error messages.

    Returns:
        ``(model, specs, json_schema)`` where ``json_schema`` is the model's JSON schema.

    Raises:
        WorkflowDefinitionError: naming the function and parameter when a
            parameter cannot be rendered or validated.
    """
    qualname = getattr(func, "__qualname__", repr(func))
    try:
        hints = typing.get_type_hints(func, include_extras=False)
    except Exception as exc:  # a forward reference that does not resolve
        raise WorkflowDefinitionError(f"{kind} {qualname}: cannot resolve parameter annotations: {exc}") from exc
    _, arg_docs = parse_docstring(func.__doc__)
    fields: dict[str, Any] = {}
    specs: list[ParameterSpec] = []
    for param in inspect.signature(func).parameters.values():
        where = f"{kind} {qualname}, parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise WorkflowDefinitionError(f"{where}: *args/**kwargs cannot be given from a form; name each parameter")
        if param.kind is param.POSITIONAL_ONLY:
            raise WorkflowDefinitionError(f"{where}: positional-only parameters are not supported")
        has_default = param.default is not inspect.Parameter.empty
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty:
            # Unannotated: take the default's type, else plain text.
            annotation = type(param.default) if has_default and param.default is not None else str
            if has_default and param.default is None:
                annotation = str | None
        try:
            inner, nullable = _strip_optional(annotation)
            type_name, choices, items = _describe(inner)
        except TypeError as exc:
            raise WorkflowDefinitionError(f"{where}: {exc}") from None
        default = param.default if has_default else ...
        description = arg_docs.get(param.name)
        fields[param.name] = (annotation, Field(default=default, description=description))
        specs.append(
            ParameterSpec(
                name=param.name,
                type=type_name,
                required=not has_default,
                default=_jsonable(param.default) if has_default else None,
                description=description,
                choices=choices,
                items=items,
                nullable=nullable or (has_default and param.default is None),
            )
        )
    model_name = f"{getattr(func, '__name__', 'workflow')}_parameters"
    try:
        model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic refuses a default or type
        raise WorkflowDefinitionError(f"{kind} {qualname}: invalid parameters: {exc}") from exc
    for spec in specs:
        spec.json_schema = schema["properties"][spec.name]
    return model, specs, schema


def model_from_json_schema(schema: dict[str, Any], name: str = "Parameters") -> type[BaseModel]:
    """Rebuild a validation model from a JSON schema made by :func:`infer_parameters`.

    The web process uses it to validate input with the same rules as the
    worker, without importing the workspace.

    Args:
        schema: The stored model JSON schema.
        name: Model class name.

    Returns:
        A pydantic model class with ``extra="forbid"``.
    """
    defs = schema.get("$defs", {})
    return _object_model(schema, defs, name, forbid=True)


def _object_model(schema: dict[str, Any], defs: dict[str, Any], name: str, forbid: bool) -> type[BaseModel]:
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, prop_schema in schema.get("properties", {}).items():
        annotation = _type_from_schema(prop_schema, defs, f"{name}_{prop}")
        default = ... if prop in required else prop_schema.get("default")
        fields[prop] = (annotation, Field(default=default))
    config = ConfigDict(extra="forbid" if forbid else "ignore")
    return create_model(name, __config__=config, **fields)


def _type_from_schema(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return _type_from_schema(defs[ref], defs, ref)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = len(options) != len(schema["anyOf"])
        inner = _type_from_schema(options[0], defs, name) if len(options) == 1 else Any
        return inner | None if nullable else inner
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _type_from_schema(schema["allOf"][0], defs, name)
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]  # type: ignore[misc]
    if "const" in schema:
        return Literal[schema["const"]]  # type: ignore[misc]
    kind = schema.get("type")
    fmt = schema.get("format")
    if kind == "string":
        if fmt == "date":
            return dt.date
        if fmt == "date-time":
            return dt.datetime
        return str
    if kind == "integer":
        return int
    if kind == "number":
        return float
    if kind == "boolean":
        return bool
    if kind == "array":
        items = schema.get("items")
        return list[_type_from_schema(items, defs, f"{name}_item")] if items else list  # type: ignore[misc]
    if kind == "object":
        if "properties" in schema:
            return _object_model(schema, defs, name, forbid=False)
        return dict[str, Any]
    return Any


def validate_parameters(model: type[BaseModel], params: dict[str, Any] | None) -> BaseModel:
    """Validate ``params`` against ``model``.

    Raises:
        ValidationError: with one ``{"field", "message"}`` entry per problem.
    """
    try:
        return model.model_validate(params or {})
    except PydanticValidationError as exc:
        raise ValidationError(
            "Invalid parameters: " + "; ".join(_format_error(e) for e in exc.errors()),
            errors=[{"field": ".".join(str(p) for p in e["loc"]) or "(root)", "message": _message(e)} for e in exc.errors()],
        ) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown parameter"
    if error["type"] == "missing":
        return "this parameter is required"
    return str(error["msg"])


def _format_error(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(root)"
    return f"{loc}: {_message(error)}"
