"""The ``where`` / ``order_by`` language of document tables, compiled to SQL per database.

Parsing (:func:`parse_where`, :func:`parse_order`) validates user input and knows
nothing about SQL; compiling (:func:`compile_where`, :func:`compile_order`) turns the
parsed conditions into SQLAlchemy expressions for SQLite (JSON1 functions on JSON
text) or Postgres (``jsonb`` operators). User text only ever reaches the database
as bound parameters: field names are validated and go into JSON paths that are
themselves bound.

Semantics, identical on both databases:

* Equality (``{"f": v}`` or ``{"f": {"eq": v}}``) is type-exact: ``"1"`` does not equal
  ``1``, ``true`` does not equal ``1``; numbers compare by value (``1 == 1.0``).
  ``None`` means ``is_null: true``.
* ``gt/gte/lt/lte`` with a number match numeric values only, compared numerically.
  With an ISO-8601 date or datetime string they match date strings only, compared
  chronologically (offsets applied; no offset = UTC; a date = its midnight UTC).
  With any other string they match strings only, compared by code point.
* ``like`` (case-sensitive) and ``ilike`` (case-insensitive) match strings only;
  ``%`` is any run of characters, ``_`` one character, ``\\`` escapes the next one.
* ``in`` takes a list of strings, numbers and booleans (type-exact, like equality).
* ``is_null: true`` matches a missing key or JSON null; ``false`` the opposite.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    Text,
    and_,
    case,
    collate,
    false,
    func,
    literal,
    literal_column,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from app.services.errors import InvalidInputError
from app.services.tables import indexes

OPERATORS = ("eq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is_null")
COMPARISONS = ("gt", "gte", "lt", "lte")
COLUMN_ORDER_FIELDS = ("created_at", "updated_at")
MAX_PATH_DEPTH = 8
MAX_CONDITIONS = 50
MAX_IN_ITEMS = 1000
MAX_OPERAND_LENGTH = 10_000
_INT64 = 2**63 - 1

# One key of a field path: letters, digits, '_', '-' and spaces (no '.', quotes or brackets,
# which would change the meaning of a JSON path).
_SEGMENT = re.compile(r"[\w\- ]{1,100}")
# ISO-8601 extended format: a date, optionally a time, optionally an offset.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")
# Anything that starts like a date: an operand of this shape that is not ISO-8601 is refused
# rather than silently compared as text ('2024-1-5' > '2024-01-10' as text).
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?:\D.*)?", re.DOTALL)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# ----- dates ---------------------------------------------------------------------------------------
def iso_epoch_us(value: str) -> int | None:
    """UTC epoch microseconds of an ISO-8601 date/datetime string, or None when it is not one.

    A date means its midnight UTC; a datetime without offset is taken as UTC.
    """
    if len(value) > 40 or not _ISO_DATE.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # e.g. 2023-02-30
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _MICROSECOND


def date_mirror(data: dict[str, Any], depth: int = 1) -> dict[str, Any] | None:
    """The ISO-8601 date strings of ``data`` as epoch microseconds, at the same key paths.

    Only objects are followed (not lists), down to :data:`MAX_PATH_DEPTH` levels: the
    depth a query path can reach. None when ``data`` holds no date.
    """
    mirror: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str):
            epoch = iso_epoch_us(value)
            if epoch is not None:
                mirror[key] = epoch
        elif isinstance(value, dict) and depth < MAX_PATH_DEPTH:
            nested = date_mirror(value, depth + 1)
            if nested is not None:
                mirror[key] = nested
    return mirror or None


# ----- parsing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One validated operator on one field.

    Attributes:
        path: Keys from the document root to the field.
        op: One of :data:`OPERATORS`.
        value: The operand, checked for the operator. For comparisons ``kind`` says
            how it compares: ``"number"``, ``"date"`` (then ``value`` is epoch µs) or ``"text"``.
        kind: See ``value``.
    """

    path: tuple[str, ...]
    op: str
    value: Any
    kind: str = ""


@dataclass(frozen=True)
class Order:
    """A validated sort: a column (``created_at``/``updated_at``) or a data path."""

    column: str | None
    path: tuple[str, ...]
    descending: bool


def parse_field(name: Any, where: str) -> tuple[str, ...]:
    """Split a field name (``"status"`` or ``"address.city"``) into validated keys.

    Args:
        name: The field name from the request.
        where: The request field it came from, for the error (``"where"``, ``"order_by"``).

    Raises:
        InvalidInputError: An empty, too deep or unsafe name.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError.field(where, "field names must be non-empty strings")
    segments = tuple(name.split("."))
    if len(segments) > MAX_PATH_DEPTH or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidInputError.field(
            where,
            f"invalid field name {name[:200]!r}: use keys of letters, digits, '_', '-' or spaces, "
            f"joined by '.' for nested objects (at most {MAX_PATH_DEPTH} levels)",
        )
    return segments


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(value: Any, field: str, op: str) -> Any:
    """A string, boolean or finite number usable as an operand; 422 otherwise."""
    if isinstance(value, str):
        if len(value) > MAX_OPERAND_LENGTH:
            raise InvalidInputError.field(field, f"{op}: text operands are limited to {MAX_OPERAND_LENGTH} characters")
        if "\x00" in value:
            raise InvalidInputError.field(field, f"{op}: text operands may not contain NUL characters")
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value <= _INT64:
            raise InvalidInputError.field(field, f"{op}: integers must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError.field(field, f"{op}: numbers must be finite")
        return value
    raise InvalidInputError.field(field, f"{op}: expected a string, number or boolean, got {type(value).__name__}")


def _check_pattern(value: Any, field: str, op: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError.field(field, f"{op}: the pattern must be a string")
    _check_scalar(value, field, op)
    if (len(value) - len(value.rstrip("\\"))) % 2:
        raise InvalidInputError.field(field, f"{op}: the pattern ends with a lone escape character '\\'")
    return value


def _comparison(path: tuple[str, ...], op: str, value: Any, field: str) -> Condition:
    if isinstance(value, bool) or not (_is_number(value) or isinstance(value, str)):
        raise InvalidInputError.field(field, f"{op}: expected a number, an ISO-8601 date or a string")
    value = _check_scalar(value, field, op)
    if _is_number(value):
        return Condition(path, op, value, "number")
    epoch = iso_epoch_us(value)
    if epoch is not None:
        return Condition(path, op, epoch, "date")
    if _DATE_LIKE.fullmatch(value):
        raise InvalidInputError.field(
            field, f"{op}: {value[:40]!r} is not an ISO-8601 date; write e.g. 2024-01-05 or 2024-01-05T10:00:00+02:00"
        )
    return Condition(path, op, value, "text")


def _parse_operator(path: tuple[str, ...], op: Any, value: Any, field: str) -> Condition:
    if op not in OPERATORS:
        raise InvalidInputError.field(field, f"unknown operator {str(op)[:50]!r}; use one of: {', '.join(OPERATORS)}")
    if op == "eq":
        if value is None:
            return Condition(path, "is_null", True)
        return Condition(path, "eq", _check_scalar(value, field, op))
    if op in COMPARISONS:
        return _comparison(path, op, value, field)
    if op in ("like", "ilike"):
        return Condition(path, op, _check_pattern(value, field, op))
    if op == "in":
        if not isinstance(value, list):
            raise InvalidInputError.field(field, "in: expected a list of values")
        if len(value) > MAX_IN_ITEMS:
            raise InvalidInputError.field(field, f"in: at most {MAX_IN_ITEMS} values")
        if any(v is None for v in value):
            raise InvalidInputError.field(field, "in: null is not a value; combine with is_null instead")
        return Condition(path, "in", tuple(_check_scalar(v, field, op) for v in value))
    # is_null
    if not isinstance(value, bool):
        raise InvalidInputError.field(field, "is_null: expected true or false")
    return Condition(path, "is_null", value)


def parse_where(where: Any) -> list[Condition]:
    """Validate a ``where`` object into conditions (all of which must hold).

    Raises:
        InvalidInputError: Naming the field and the operator at fault.
    """
    if where is None:
        return []
    if not isinstance(where, dict):
        raise InvalidInputError.field("where", "must be an object of field: value or field: {operator: value}")
    conditions: list[Condition] = []
    for name, spec in where.items():
        path = parse_field(name, "where")
        field = f"where.{name}"
        if isinstance(spec, dict):
            if not spec:
                raise InvalidInputError.field(field, f"no operator given; use one of: {', '.join(OPERATORS)}")
            conditions.extend(_parse_operator(path, op, value, field) for op, value in spec.items())
        elif spec is None:
            conditions.append(Condition(path, "is_null", True))
        elif isinstance(spec, list):
            raise InvalidInputError.field(field, 'a list is not an equality value; use {"in": [...]}')
        else:
            conditions.append(Condition(path, "eq", _check_scalar(spec, field, "eq")))
        if len(conditions) > MAX_CONDITIONS:
            raise InvalidInputError.field("where", f"at most {MAX_CONDITIONS} conditions")
    return conditions


def parse_order(order_by: Any, order_dir: Any) -> Order:
    """Validate ``order_by`` (a data field, ``created_at`` or ``updated_at``; None = created_at) and ``order_dir``."""
    if order_dir is None:
        order_dir = "asc"
    if not isinstance(order_dir, str) or order_dir.lower() not in ("asc", "desc"):
        raise InvalidInputError.field("order_dir", "must be 'asc' or 'desc'")
    descending = order_dir.lower() == "desc"
    if order_by is None or order_by == "":
        return Order("created_at", (), descending)
    if order_by in COLUMN_ORDER_FIELDS:
        return Order(order_by, (), descending)
    return Order(None, parse_field(order_by, "order_by"), descending)


# ----- compiling -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    """The columns a query runs over: document data, its date mirror, id and timestamps."""

    data: Any
    dates: Any
    id: Any
    created_at: Any
    updated_at: Any


def _sqlite_path(path: Sequence[str]) -> Any:
    # Keys are validated (no quotes or dots), so quoting each one makes an unambiguous path;
    # the path itself is still a bound parameter.
    return literal("$" + "".join(f'."{key}"' for key in path), Text)


class _SQLite:
    """JSON1 over JSON text: ``json_extract`` gives the SQL value, ``json_type`` the JSON type."""

    NUMBER = ("integer", "real")

    def __init__(self, cols: Columns, indexed: frozenset[tuple[str, ...]] = frozenset()) -> None:
        self.c = cols
        self.indexed = indexed
        self.upper_bounded: set[tuple[str, ...]] = set()

    def value(self, path: Sequence[str]) -> Any:
        if tuple(path) in self.indexed:
            # The indexed expression itself, its JSON path inlined (a bound path matches no index).
            return literal_column(indexes.sqlite_value(path))
        return func.json_extract(self.c.data, _sqlite_path(path))

    def type(self, path: Sequence[str]) -> Any:
        return func.json_type(self.c.data, _sqlite_path(path))

    def eq(self, path: Sequence[str], value: Any) -> ColumnElement[bool]:
        if isinstance(value, bool):
            return self.type(path) == ("true" if value else "false")  # type: ignore[no-any-return]
        # The value test comes first: SQLite stops at the first false term, so the type
        # check (a second JSON parse) only runs on rows whose value already matched.
        if isinstance(value, str):
            return and_(self.value(path) == value, self.type(path) == "text")
        return and_(self.value(path) == value, self.type(path).in_(self.NUMBER))

    def compare(self, cond: Condition) -> ColumnElement[bool]:
        if cond.kind == "date":
            mirror = _sqlite_path(cond.path)
            left = func.json_extract(self.c.dates, mirror)
            guard = func.json_type(self.c.dates, mirror) == "integer"
        elif cond.kind == "number":
            left, guard = self.value(cond.path), self.type(cond.path).in_(self.NUMBER)
            if cond.op in ("gt", "gte") and cond.path in self.indexed and cond.path not in self.upper_bounded:
                # SQLite sorts every text after every number: without an upper bound, the index range
                # would run on through all the field's strings only for the type guard to drop them.
                # (Not with a numeric upper bound too: SQLite would pick this one and ignore that.)
                guard = and_(left < literal_column("''"), guard)
        else:
            left, guard = self.value(cond.path), self.type(cond.path) == "text"
        return and_(_apply(cond.op, left, cond.value), guard)

    def like(self, cond: Condition) -> ColumnElement[bool]:
        text_value = self.value(cond.path)
        if cond.op == "like":
            # SQLite's LIKE ignores ASCII case; GLOB is case-sensitive, so the pattern is translated.
            matched = text_value.op("GLOB")(literal(like_to_glob(cond.value), Text))
        else:
            matched = text_value.like(literal(cond.value, Text), escape="\\")
        return and_(matched, self.type(cond.path) == "text")

    def is_in(self, path: Sequence[str], values: Sequence[Any]) -> ColumnElement[bool]:
        strings = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if _is_number(v)]
        booleans = sorted({"true" if v else "false" for v in values if isinstance(v, bool)})
        parts: list[ColumnElement[bool]] = []
        if strings:
            parts.append(and_(self.value(path).in_(strings), self.type(path) == "text"))
        if numbers:
            parts.append(and_(self.value(path).in_(numbers), self.type(path).in_(self.NUMBER)))
        if booleans:
            parts.append(self.type(path).in_(booleans))
        return or_(*parts) if parts else false()

    def is_null(self, path: Sequence[str]) -> ColumnElement[bool]:
        # json_extract gives SQL NULL both for a missing key and for JSON null.
        return self.value(path).is_(None)  # type: ignore[no-any-return]

    def sort_keys(self, path: Sequence[str], groups: dict[str, int]) -> tuple[Any, Any, Any, Any]:
        # Simple CASE forms: the JSON type is computed once per key, not once per WHEN.
        json_type = self.type(path)
        group = case(
            {
                "integer": groups["number"],
                "real": groups["number"],
                "text": groups["string"],
                "true": groups["boolean"],
                "false": groups["boolean"],
                "object": groups["other"],
                "array": groups["other"],
            },
            value=json_type,
            else_=groups["missing"],  # JSON null, or no such key
        )
        number = case({"integer": self.value(path), "real": self.value(path)}, value=self.type(path))
        date = case({"text": func.json_extract(self.c.dates, _sqlite_path(path))}, value=self.type(path))
        text = case({"text": self.value(path), "true": "true", "false": "false"}, value=self.type(path))
        return group, number, date, text


class _Postgres:
    """``jsonb``: ``->`` walks the path, ``jsonb_typeof`` gives the type, ``@>`` uses the GIN index.

    A declared (indexed) field is compared through the expressions of its indexes instead
    (:mod:`app.services.tables.indexes`): ``(data -> 'f') = value`` and the numeric CASE.
    """

    def __init__(self, cols: Columns, indexed: frozenset[tuple[str, ...]] = frozenset()) -> None:
        self.c = cols
        self.indexed = indexed

    def _walk(self, root: Any, path: Sequence[str]) -> Any:
        node = root
        for key in path:
            node = node.op("->", return_type=JSONB)(literal(key, Text))
        return node

    def node(self, path: Sequence[str]) -> Any:
        return self._walk(self.c.data, path)

    def text(self, path: Sequence[str]) -> Any:
        parent = self._walk(self.c.data, path[:-1])
        return parent.op("->>", return_type=Text)(literal(path[-1], Text))

    def type(self, path: Sequence[str]) -> Any:
        return func.jsonb_typeof(self.node(path))

    def eq(self, path: Sequence[str], value: Any) -> ColumnElement[bool]:
        if tuple(path) in self.indexed:
            # jsonb equality is type-exact and compares numbers by value, like containment.
            return literal_column(indexes.postgres_node(path), JSONB) == literal(value, JSONB)  # type: ignore[no-any-return]
        # Containment of a scalar at a path is type-exact (numbers by value) and served by GIN.
        document: Any = value
        for key in reversed(path):
            document = {key: document}
        return self.c.data.bool_op("@>")(literal(document, JSONB))  # type: ignore[no-any-return]

    def compare(self, cond: Condition) -> ColumnElement[bool]:
        if cond.kind == "date":
            node = self._walk(self.c.dates, cond.path)
            return and_(func.jsonb_typeof(node) == "number", _apply(cond.op, node, literal(cond.value, JSONB)))
        if cond.kind == "number" and tuple(cond.path) in self.indexed:
            # NULL unless a JSON number: no type guard needed, and the numeric index serves the range.
            # The operand as numeric too: a float8 parameter would turn the expression into a float
            # comparison that matches no index.
            operand = literal(Decimal(repr(cond.value)), Numeric(asdecimal=True))
            return _apply(cond.op, literal_column(indexes.postgres_number(cond.path), Numeric), operand)
        if cond.kind == "number":
            # jsonb orders numbers by value; the type guard keeps other types out.
            node = self.node(cond.path)
            return and_(func.jsonb_typeof(node) == "number", _apply(cond.op, node, literal(cond.value, JSONB)))
        # Code-point order, as SQLite's BINARY collation (the database collation may differ).
        left = collate(self.text(cond.path), "C")
        return and_(self.type(cond.path) == "string", _apply(cond.op, left, literal(cond.value, Text)))

    def like(self, cond: Condition) -> ColumnElement[bool]:
        pattern = literal(cond.value, Text)
        text_value = self.text(cond.path)
        matched = text_value.like(pattern, escape="\\") if cond.op == "like" else text_value.ilike(pattern, escape="\\")
        return and_(self.type(cond.path) == "string", matched)

    def is_in(self, path: Sequence[str], values: Sequence[Any]) -> ColumnElement[bool]:
        if not values:
            return false()
        node = literal_column(indexes.postgres_node(path), JSONB) if tuple(path) in self.indexed else self.node(path)
        # jsonb equality is type-exact and compares numbers by value, like eq.
        return node.in_([literal(v, JSONB) for v in values])  # type: ignore[no-any-return]

    def is_null(self, path: Sequence[str]) -> ColumnElement[bool]:
        # ->> gives SQL NULL both for a missing key and for JSON null.
        return self.text(path).is_(None)  # type: ignore[no-any-return]

    def sort_keys(self, path: Sequence[str], groups: dict[str, int]) -> tuple[Any, Any, Any, Any]:
        group = case(
            {
                "number": groups["number"],
                "string": groups["string"],
                "boolean": groups["boolean"],
                "object": groups["other"],
                "array": groups["other"],
            },
            value=self.type(path),
            else_=groups["missing"],  # JSON null, or no such key
        )
        number = case({"number": self.node(path)}, value=self.type(path))
        date = case({"string": self._walk(self.c.dates, path)}, value=self.type(path))
        text = collate(case({"string": self.text(path), "boolean": self.text(path)}, value=self.type(path)), "C")
        return group, number, date, text


def _apply(op: str, left: Any, right: Any) -> ColumnElement[bool]:
    if op == "gt":
        return left > right  # type: ignore[no-any-return]
    if op == "gte":
        return left >= right  # type: ignore[no-any-return]
    if op == "lt":
        return left < right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]


def like_to_glob(pattern: str) -> str:
    """Translate a LIKE pattern (``%``, ``_``, ``\\`` escapes) into an equivalent SQLite GLOB pattern."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars)  # parse_where refused a trailing lone backslash
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def _dialect(name: str, cols: Columns, indexed: frozenset[tuple[str, ...]] = frozenset()) -> _SQLite | _Postgres:
    if name == "sqlite":
        return _SQLite(cols, indexed)
    if name == "postgresql":
        return _Postgres(cols, indexed)
    raise NotImplementedError(f"document tables support SQLite and Postgres, not {name}")


def compile_where(
    conditions: Sequence[Condition],
    dialect: str,
    cols: Columns,
    indexed: frozenset[tuple[str, ...]] = frozenset(),
) -> ColumnElement[bool]:
    """AND of every condition as a SQL expression for ``dialect`` (``sqlite`` or ``postgresql``).

    Conditions on ``indexed`` paths (the table's declared fields) use the expressions of their indexes.
    """
    sql = _dialect(dialect, cols, indexed)
    if isinstance(sql, _SQLite):
        sql.upper_bounded = {c.path for c in conditions if c.op in ("lt", "lte") and c.kind == "number"}
    parts: list[ColumnElement[bool]] = []
    for cond in conditions:
        if cond.op == "eq":
            parts.append(sql.eq(cond.path, cond.value))
        elif cond.op in COMPARISONS:
            parts.append(sql.compare(cond))
        elif cond.op in ("like", "ilike"):
            parts.append(sql.like(cond))
        elif cond.op == "in":
            parts.append(sql.is_in(cond.path, cond.value))
        else:
            null = sql.is_null(cond.path)
            parts.append(null if cond.value else ~null)
    return and_(true(), *parts)


_GROUPS_ASC = {"number": 0, "string": 1, "boolean": 2, "other": 3, "missing": 4}
_GROUPS_DESC = {"other": 0, "boolean": 1, "string": 2, "number": 3, "missing": 4}


def compile_order(order: Order, dialect: str, cols: Columns) -> list[UnaryExpression[Any]]:
    """ORDER BY terms: the field, then the document id, so that pages are stable.

    A data field sorts missing/null values last in both directions, then by type
    (numbers, strings, booleans, objects/arrays), numbers by value, date strings
    chronologically before other strings, strings by code point.
    """

    def direct(expr: Any) -> UnaryExpression[Any]:
        return expr.desc() if order.descending else expr.asc()  # type: ignore[no-any-return]

    if order.column is not None:
        return [direct(getattr(cols, order.column)), direct(cols.id)]
    # One group key sorted ascending, numbered per direction, so that missing/null stays last.
    groups = _GROUPS_DESC if order.descending else _GROUPS_ASC
    group, number, date, text = _dialect(dialect, cols).sort_keys(order.path, groups)
    # NULLS placement is spelled out: SQLite and Postgres disagree on the default.
    return [
        group.asc(),
        direct(number).nulls_last(),
        direct(date).nulls_last(),
        direct(text).nulls_last(),
        direct(cols.id),
    ]
