"""Indexes on the document fields a table declares (``table_schema["indexes"]``, the admin page).

A filter on a JSON field otherwise reads every document of the table (630 ms for an equality and
744 ms for a numeric range at 1M documents on SQLite). Each declared field gets indexes limited to
its table's documents (partial indexes ``WHERE table_id = '<id>'``):

* SQLite: ``json_extract(data, '$."f"')``, which serves equality (text and numbers) and ranges;
* Postgres: ``(data -> 'f')`` for equality and ``in`` (jsonb equality is type-exact, numbers by
  value), and ``CASE WHEN jsonb_typeof(data -> 'f') = 'number' THEN (data ->> 'f')::numeric END``
  for numeric ranges (jsonb orders booleans, objects and strings around numbers; the CASE keeps only
  numbers, in numeric order).

The query compiler (:mod:`app.services.tables.query`) writes conditions on declared fields with the
very same expressions, the table id and JSON keys inlined as SQL literals (a bound parameter matches
neither an index expression nor a partial index's WHERE on SQLite). Those forms mean exactly what the
generic ones mean, so a query is correct whether or not an index exists.

Cost: building an index reads the whole ``document`` table once (all tables' documents), and every
write of a document of the table updates its indexes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.document_table import DocTable, DocTableIndex

MAX_INDEXES_PER_TABLE = 8
INDEX_PREFIX = "ixdoc_"
_TABLE_ID = re.compile(r"[0-9a-f-]{36}")


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled; callers pass validated keys and ids only)."""
    if "\x00" in value:
        raise ValueError("NUL in a SQL literal")
    return "'" + value.replace("'", "''") + "'"


def table_literal(table_id: str) -> str:
    """The table id as a SQL literal (ids are UUIDs the platform made)."""
    if not _TABLE_ID.fullmatch(table_id):
        raise ValueError(f"unexpected table id {table_id!r}")
    return sql_string(table_id)


def sqlite_value(path: Sequence[str]) -> str:
    """The SQLite expression of a field's value, as indexed."""
    json_path = "$" + "".join(f'."{key}"' for key in path)
    return f"json_extract(data, {sql_string(json_path)})"


def postgres_node(path: Sequence[str]) -> str:
    """The Postgres ``jsonb`` node of a field, as indexed."""
    return "(data" + "".join(f" -> {sql_string(key)}" for key in path) + ")"


def postgres_number(path: Sequence[str]) -> str:
    """The Postgres numeric value of a field (NULL unless it is a JSON number), as indexed."""
    parent = "(data" + "".join(f" -> {sql_string(key)}" for key in path[:-1]) + ")"
    return (
        f"(CASE WHEN jsonb_typeof({postgres_node(path)}) = 'number' "
        f"THEN ({parent} ->> {sql_string(path[-1])})::numeric END)"
    )


def index_name(table_id: str, field: str) -> str:
    """A stable name for the index of ``field`` in a table (Postgres adds ``_n`` for the numeric one)."""
    return INDEX_PREFIX + hashlib.sha256(f"{table_id}\x00{field}".encode()).hexdigest()[:24]


def best_index(table_id: str, conditions: Iterable[Any], indexed: frozenset[tuple[str, ...]]) -> str | None:
    """The index to read for ``conditions`` on SQLite: an equality or ``in`` on a declared field first
    (usually the most selective), else a number or text range on one; None when none applies."""
    ranked = sorted(
        (0 if cond.op in ("eq", "in") else 1, ".".join(cond.path))
        for cond in conditions
        if cond.path in indexed and (cond.op in ("eq", "in") or cond.kind in ("number", "text"))
    )
    return index_name(table_id, ranked[0][1]) if ranked else None


def _ddl(dialect: str, name: str, table_id: str, path: Sequence[str]) -> list[str]:
    where = f"WHERE table_id = {table_literal(table_id)}"
    if dialect == "sqlite":
        return [f"CREATE INDEX IF NOT EXISTS {name} ON document ({sqlite_value(path)}) {where}"]
    return [
        f"CREATE INDEX IF NOT EXISTS {name} ON document ({postgres_node(path)}) {where}",
        f"CREATE INDEX IF NOT EXISTS {name}_n ON document ({postgres_number(path)}) {where}",
    ]


def _drop_ddl(dialect: str, name: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP INDEX IF EXISTS {name}"]
    return [f"DROP INDEX IF EXISTS {name}", f"DROP INDEX IF EXISTS {name}_n"]


async def declared(session: AsyncSession, table_id: str) -> set[tuple[str, ...]]:
    """The indexed field paths of a table."""
    stmt = select(col(DocTableIndex.field)).where(col(DocTableIndex.table_id) == table_id)
    return {tuple(field.split(".")) for field in (await session.execute(stmt)).scalars()}


async def set_indexes(session: AsyncSession, table: DocTable, fields: Iterable[str]) -> list[str]:
    """Make the table's indexed fields exactly ``fields`` (already validated); returns them sorted.

    Indexes of fields no longer declared are dropped; new ones are built (see the module's cost note).
    """
    dialect = session.get_bind().dialect.name
    wanted = set(fields)
    rows = (await session.execute(select(DocTableIndex).where(col(DocTableIndex.table_id) == table.id))).scalars().all()
    have = {row.field: row for row in rows}
    for field, row in have.items():
        if field not in wanted:
            for statement in _drop_ddl(dialect, row.index_name):
                await session.execute(text(statement))
            await session.execute(
                delete(DocTableIndex).where(col(DocTableIndex.table_id) == table.id, col(DocTableIndex.field) == field)
            )
    for field in sorted(wanted - set(have)):
        name = index_name(table.id, field)
        for statement in _ddl(dialect, name, table.id, field.split(".")):
            await session.execute(text(statement))
        session.add(DocTableIndex(table_id=table.id, field=field, index_name=name))
    await session.flush()
    return sorted(wanted)


async def drop_all(session: AsyncSession, table_id: str) -> None:
    """Drop the indexes of a table about to be deleted (its rows go with the table by cascade)."""
    dialect = session.get_bind().dialect.name
    stmt = select(col(DocTableIndex.index_name)).where(col(DocTableIndex.table_id) == table_id)
    for name in list((await session.execute(stmt)).scalars()):
        for statement in _drop_ddl(dialect, name):
            await session.execute(text(statement))
    await session.execute(delete(DocTableIndex).where(col(DocTableIndex.table_id) == table_id))
