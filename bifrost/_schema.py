"""Parameter inference: from a function signature to a pydantic model and back.

Workflows and data providers declare their parameters as a plain Python
signature. This module turns that signature into

* a pydantic model used to validate and coerce parameters inside the worker,
* a list of JSON-able :class:`ParameterSpec` records stored by the platform
  (forms, API docs and LLM tool schemas are built from them), and
* back again: :func:`model_from_json_schema` rebuilds an equivalent validation
  model from the stored JSON schema, so that the web process can validate
  input without importing the workspace.

Only types that can be rendered in a form and validated are accepted; any
other annotation fails at decoration time naming the function and parameter.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import ipaddress
import types
import typing
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, TypeAdapter, create_model
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


def _unwrap(annotation: Any) -> Any:
    """Drop ``Annotated[...]`` metadata (constraints stay on the model, not in the classification)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(annotation))
        if len(args) == 1:
            return _unwrap(args[0]), nullable
        raise TypeError("unions of several types cannot be rendered as one form field")
    return annotation, False


def _describe(annotation: Any) -> tuple[str, list[Any] | None, str | None]:
    """Classify a (non-optional) annotation: ``(type, choices, item_type)``.

    Raises:
        TypeError: If the annotation cannot be rendered and validated.
    """
    annotation = _unwrap(annotation)
    try:
        scalar = _SCALARS.get(annotation)
    except TypeError:  # unhashable annotation object
        scalar = None
    if scalar is not None:
        return scalar, None, None
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
        item_type, item_choices, _ = _describe(args[0])
        if item_type == "array":
            raise TypeError("lists of lists cannot be rendered as a form field")
        return "array", item_choices, item_type
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


def _check_name(name: str) -> None:
    if name.startswith("_"):
        raise TypeError("parameter names may not start with an underscore")
    if name.startswith("model_") and hasattr(BaseModel, name):
        raise TypeError(f"{name!r} is reserved by pydantic; choose another parameter name")


def infer_parameters(
    func: Any, *, kind: str = "workflow"
) -> tuple[type[BaseModel], list[ParameterSpec], dict[str, Any]]:
    """Build the validation model and parameter specs from ``func``'s signature.

    Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``date``,
    ``datetime``, ``Literal[...]``, ``Enum`` subclasses, ``list[...]`` of
    those, ``dict`` / ``dict[str, ...]`` and pydantic models, each optionally
    ``X | None`` and/or wrapped in ``Annotated[X, Field(...)]`` for constraints.
    An unannotated parameter takes its default's type (else ``str``); a
    parameter defaulting to None accepts None even without ``| None``.

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
        hints = typing.get_type_hints(func, include_extras=True)
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
            _check_name(param.name)
            inner, nullable = _strip_optional(annotation)
            type_name, choices, items = _describe(inner)
            default_json = _jsonable(param.default) if has_default else None
        except TypeError as exc:
            raise WorkflowDefinitionError(f"{where}: {exc}") from None
        except Exception as exc:  # the default cannot be turned into JSON
            raise WorkflowDefinitionError(
                f"{where}: the default {param.default!r} is not JSON-serialisable ({exc})"
            ) from None
        if has_default and param.default is None and not nullable:
            # ``x: str = None`` means "optional": accept an explicit None too, as the spec says.
            annotation = Optional[annotation]  # noqa: UP045 - annotation is a runtime object here
            nullable = True
        default = param.default if has_default else ...
        description = arg_docs.get(param.name)
        field_kwargs: dict[str, Any] = {"default": default}
        if description is not None:  # else keep a description given with Annotated[..., Field(description=...)]
            field_kwargs["description"] = description
        fields[param.name] = (annotation, Field(**field_kwargs))
        specs.append(
            ParameterSpec(
                name=param.name,
                type=type_name,
                required=not has_default,
                default=default_json,
                description=description,
                choices=choices,
                items=items,
                nullable=nullable,
            )
        )
    model_name = f"{getattr(func, '__name__', 'workflow')}_parameters"
    try:
        with warnings.catch_warnings():
            # A parameter called e.g. ``json`` or ``copy`` shadows a deprecated
            # BaseModel method; harmless, the field wins.
            warnings.filterwarnings("ignore", message=".*shadows an attribute in parent", category=UserWarning)
            model = create_model(model_name, __config__=_PARAMS_CONFIG, **fields)
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic refuses a default or type
        raise WorkflowDefinitionError(f"{kind} {qualname}: invalid parameters: {exc}") from exc
    for spec in specs:
        spec.json_schema = schema["properties"][spec.name]
        if spec.description is None:
            spec.description = spec.json_schema.get("description")
    return model, specs, schema


def model_from_json_schema(schema: dict[str, Any], name: str = "Parameters") -> type[BaseModel]:
    """Rebuild a validation model from a JSON schema made by :func:`infer_parameters`.

    The web process uses it to validate input with the same rules as the
    worker, without importing the workspace: types, formats (date, date-time,
    time, duration, uuid, uri, ipv4/ipv6), choices, constraints (min/max,
    lengths, pattern, multipleOf, item and property counts), nested models and
    their extra-field policy, dict value types and nullability are kept.

    Defaults made by a ``default_factory`` are not in the schema: they are
    rebuilt as an empty list/dict for arrays/objects, else None. Callers
    forwarding validated input to the worker should therefore send
    ``model_dump(mode="json", exclude_unset=True)`` and let the worker apply its
    own defaults.

    Known approximations (more lenient than the original, never stricter):
    a self-referencing model is checked one level deep; an ``Enum`` with int
    values is rebuilt like an ``IntEnum`` (so ``"1"`` is accepted for 1 and
    coerced); a ``Decimal`` is rebuilt as ``float | str``.

    Args:
        schema: The stored model JSON schema.
        name: Model class name.

    Returns:
        A pydantic model class with ``extra="forbid"``.
    """
    return _Rebuilder(schema.get("$defs", {})).object_model(schema, name, top=True)


_PARAMS_CONFIG = ConfigDict(extra="forbid", protected_namespaces=())

_FORMATS: dict[str, Any] = {
    "date": dt.date,
    "date-time": dt.datetime,
    "time": dt.time,
    "duration": dt.timedelta,
    "uuid": uuid.UUID,
    "uuid1": uuid.UUID,
    "uuid3": uuid.UUID,
    "uuid4": uuid.UUID,
    "uuid5": uuid.UUID,
    "ipv4": ipaddress.IPv4Address,
    "ipv6": ipaddress.IPv6Address,
}

# JSON schema keyword -> pydantic Field constraint, per JSON type
_CONSTRAINTS: dict[str, dict[str, str]] = {
    "string": {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"},
    "integer": {
        "minimum": "ge",
        "maximum": "le",
        "exclusiveMinimum": "gt",
        "exclusiveMaximum": "lt",
        "multipleOf": "multiple_of",
    },
    "array": {"minItems": "min_length", "maxItems": "max_length"},
    "object": {"minProperties": "min_length", "maxProperties": "max_length"},
}
_CONSTRAINTS["number"] = _CONSTRAINTS["integer"]


class _Rebuilder:
    """Turns one JSON schema (with its ``$defs``) back into pydantic types."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.done: dict[str, Any] = {}
        self.building: set[str] = set()

    def ref(self, ref: str) -> Any:
        key = ref.rsplit("/", 1)[-1]
        if key in self.done:
            return self.done[key]
        if key in self.building or key not in self.defs:
            return Any  # a recursive (or dangling) reference: accept without checking deeper
        self.building.add(key)
        try:
            result = self.type_of(self.defs[key], key, named=True)
        finally:
            self.building.discard(key)
        self.done[key] = result
        return result

    def type_of(self, schema: dict[str, Any] | bool, name: str, named: bool = False) -> Any:
        if not isinstance(schema, dict):
            return Any
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            built = [self.type_of(o, f"{name}_{i}") for i, o in enumerate(non_null)]
            inner: Any = built[0] if len(built) == 1 else Union[tuple(built)] if built else type(None)  # noqa: UP007
            return Optional[inner] if len(non_null) != len(options) else inner  # noqa: UP045
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.type_of(schema["allOf"][0], name, named)
        if "enum" in schema:
            values = schema["enum"]
            mixin = {"integer": int, "number": float}.get(schema.get("type", ""))
            if named and mixin is not None and values:
                # An Enum class (always reached through $defs) with numeric values: lax like IntEnum.
                return enum.Enum(name, [(f"v{i}", v) for i, v in enumerate(values)], type=mixin)  # type: ignore[misc]
            return Literal[tuple(values)]  # type: ignore[misc]
        if "const" in schema:
            return Literal[schema["const"]]  # type: ignore[misc]
        kind = schema.get("type")
        base: Any
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "uri":
                return AnyUrl  # url types carry their own length rules
            base = _FORMATS.get(fmt or "", str)
            if base is not str:
                return base
        elif kind == "integer":
            base = int
        elif kind == "number":
            base = float
        elif kind == "boolean":
            return bool
        elif kind == "null":
            return type(None)
        elif kind == "array":
            items = schema.get("items")
            base = list[self.type_of(items, f"{name}_item")] if isinstance(items, dict) and items else list  # type: ignore[misc]
        elif kind == "object":
            if "properties" in schema:
                return self.object_model(schema, name)
            extra = schema.get("additionalProperties", True)
            base = dict[str, self.type_of(extra, f"{name}_value") if isinstance(extra, dict) else Any]  # type: ignore[misc]
        else:
            return Any
        constraints = {
            target: schema[keyword] for keyword, target in _CONSTRAINTS.get(kind, {}).items() if keyword in schema
        }
        return Annotated[base, Field(**constraints)] if constraints else base

    def object_model(self, schema: dict[str, Any], name: str, top: bool = False) -> type[BaseModel]:
        required = set(schema.get("required", []))
        fields: dict[str, Any] = {}
        for index, (prop, prop_schema) in enumerate(schema.get("properties", {}).items()):
            annotation = self.type_of(prop_schema, f"{name}_{prop}")
            kwargs: dict[str, Any] = {}
            if prop in required:
                kwargs["default"] = ...
            elif isinstance(prop_schema, dict) and "default" in prop_schema:
                kwargs["default"] = _typed_default(annotation, prop_schema["default"])
            else:
                # A default_factory leaves no default in the schema; empty containers are the usual case.
                kwargs.update(_empty_default(prop_schema))
            if isinstance(prop_schema, dict) and prop_schema.get("description"):
                kwargs["description"] = prop_schema["description"]
            field_name = prop
            if (
                not prop.isidentifier()
                or prop.startswith("_")
                or (prop.startswith("model_") and hasattr(BaseModel, prop))
            ):
                # Only names pydantic refuses as fields (an alias of a nested model, e.g. "@type").
                field_name, kwargs["alias"] = f"field_{index}", prop
            fields[field_name] = (annotation, Field(**kwargs))
        extra = schema.get("additionalProperties")
        policy = (
            "forbid" if top or extra is False else "allow" if extra is True or isinstance(extra, dict) else "ignore"
        )
        config = ConfigDict(extra=policy, protected_namespaces=())  # type: ignore[typeddict-item]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*shadows an attribute in parent", category=UserWarning)
            return create_model(name, __config__=config, **fields)


def _typed_default(annotation: Any, value: Any) -> Any:
    """Turn a JSON default back into the field's type (``"red"`` -> the enum member, ISO -> date)."""
    if value is None:
        return None
    try:
        return TypeAdapter(annotation).validate_python(value)
    except Exception:  # a default the type refuses: keep it as stored, like pydantic does
        return value


def _empty_default(schema: Any) -> dict[str, Any]:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "array":
        return {"default_factory": list}
    if kind == "object" and "properties" not in schema:
        return {"default_factory": dict}
    return {"default": None}


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
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]) or "(root)", "message": _message(e)} for e in exc.errors()
            ],
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
