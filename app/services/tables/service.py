"""Document tables: JSON documents in named tables, per organization (and app) or global.

Scope (the ``scope`` argument of every call):

* ``None``: the actor's acting organization (a platform admin acting globally: global);
* ``"global"``: global tables. Everyone may read them; only platform admins may change them;
* an organization id: that organization. Platform admins only (an unknown id is 404);
  other users may name only their own organization, any other id is refused (403).

``app`` separates applications: tables of the same name in two apps (or in an app and
outside any app) never mix. ``None`` is the namespace of tables outside any app.
"""

from __future__ import annotations

import builtins
import json
import math
import re
from typing import Any

from sqlalchemy import Select, delete, func, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Organization
from app.models.base import new_id, utcnow
from app.models.document_table import DocTable, DocTableIndex, Document
from app.services.actor import Actor
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    optional_text,
)
from app.services.tables import indexes
from app.services.tables.query import (
    Columns,
    Condition,
    compile_order,
    compile_where,
    date_mirror,
    parse_field,
    parse_order,
    parse_where,
)
from bifrost.types import DocumentData, DocumentList, TableInfo

GLOBAL_SCOPE = "global"
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_NESTING = 64

_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_APP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_COLUMNS = Columns(
    data=col(Document.data),
    dates=col(Document.dates),
    id=col(Document.id),
    created_at=col(Document.created_at),
    updated_at=col(Document.updated_at),
)


def table_info(table: DocTable) -> TableInfo:
    """The SDK shape of a table."""
    return TableInfo(
        id=table.id,
        name=table.name,
        description=table.description,
        table_schema=table.table_schema,
        organization_id=table.organization_id,
        created_at=table.created_at,
    )


def document_data(document: Document) -> DocumentData:
    """The SDK shape of a document."""
    return DocumentData(
        id=document.id,
        table_id=document.table_id,
        data=document.data,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


# ----- input checks --------------------------------------------------------------------------------
def check_table_name(name: Any, field: str = "table") -> str:
    """A valid table name; InvalidInputError naming it otherwise."""
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        shown = repr(name[:120]) if isinstance(name, str) else type(name).__name__
        raise InvalidInputError.field(
            field,
            f"invalid table name {shown}: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_'",
        )
    return name


def check_app(app: Any) -> str:
    """The app namespace ('' for none); InvalidInputError naming it when invalid."""
    if app is None or app == "":
        return ""
    if not isinstance(app, str) or not _APP_NAME.fullmatch(app):
        shown = repr(app[:120]) if isinstance(app, str) else type(app).__name__
        raise InvalidInputError.field(
            "app", f"invalid app {shown}: use 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return app


def check_document_id(doc_id: Any, field: str = "id") -> str:
    """A valid document id (1-255 characters, no '/', no control characters)."""
    if not isinstance(doc_id, str) or not doc_id or len(doc_id) > 255:
        raise InvalidInputError.field(field, "must be a string of 1 to 255 characters")
    if "/" in doc_id or _CONTROL.search(doc_id) or doc_id in (".", ".."):
        # '/' and dot segments cannot travel in a URL path segment; control characters are never intended.
        raise InvalidInputError.field(
            field, f"invalid document id {doc_id[:120]!r}: no '/', '.', '..' or control characters"
        )
    return doc_id


def check_data(data: Any, field: str = "data") -> dict[str, Any]:
    """A JSON object Postgres and SQLite can both store: no NUL characters, finite numbers, bounded size and depth."""
    if not isinstance(data, dict):
        raise InvalidInputError.field(field, "must be a JSON object")
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:  # iterative: a deeply nested body must not exhaust the Python stack
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_NESTING:
                raise InvalidInputError.field(field, f"nested more than {MAX_NESTING} levels deep")
            if isinstance(value, dict):
                for key in value:
                    if not isinstance(key, str) or "\x00" in key:
                        raise InvalidInputError.field(field, "keys must be strings without NUL characters")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, str):
            if "\x00" in value:
                raise InvalidInputError.field(field, "text may not contain NUL characters (\\u0000)")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError.field(field, "numbers must be finite")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInputError.field(field, f"unsupported value of type {type(value).__name__}")
    if len(json.dumps(data, separators=(",", ":"))) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError.field(field, f"documents are limited to {MAX_DOCUMENT_BYTES} bytes of JSON")
    return data


def check_indexed_fields(fields: Any, field: str = "table_schema.indexes") -> list[str]:
    """Validate the document fields a table declares as indexed (dotted names, as in ``where``).

    Raises:
        InvalidInputError: Not a list of field names, or more than
            :data:`app.services.tables.indexes.MAX_INDEXES_PER_TABLE`.
    """
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidInputError.field(field, 'must be a list of field names, e.g. ["status", "address.city"]')
    names = list(dict.fromkeys(fields))
    if len(names) > indexes.MAX_INDEXES_PER_TABLE:
        raise InvalidInputError.field(field, f"at most {indexes.MAX_INDEXES_PER_TABLE} indexed fields per table")
    for name in names:
        parse_field(name, field)
    return names


def check_page(limit: Any, offset: Any) -> tuple[int, int]:
    """``limit`` (None = :data:`MAX_LIMIT`) and ``offset`` within bounds; InvalidInputError naming the bad one."""
    if limit is None:
        limit = MAX_LIMIT
    if offset is None:
        offset = 0
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise InvalidInputError.field("limit", f"must be an integer between 0 and {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInputError.field("offset", f"must be an integer between 0 and {MAX_OFFSET}")
    return limit, offset


# ----- the service ---------------------------------------------------------------------------------
class TableService:
    """Tables and their documents, always within the caller's resolved scope."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._custom_plans = False

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def resolve_scope(self, actor: Actor, scope: Any, *, write: bool) -> str | None:
        """The organization id a call acts on (None = global), after permission checks.

        Args:
            actor: The caller.
            scope: None, ``"global"`` or an organization id.
            write: True for calls that change tables or documents.

        Raises:
            PermissionDeniedError: Another organization's id (non-admins), or a write to global tables (non-admins).
            NotFoundError: An admin named an organization that does not exist.
        """
        if scope is None or scope == "":
            org_id = actor.acting_org_id
        elif not isinstance(scope, str):
            raise InvalidInputError.field("scope", "must be null, 'global' or an organization id")
        elif scope == GLOBAL_SCOPE:
            org_id = None
        elif actor.is_superuser:
            if await self.session.get(Organization, scope) is None:
                raise NotFoundError(f"Organization {scope[:100]!r} not found.")
            org_id = scope
        elif scope == actor.acting_org_id:
            org_id = scope
        else:
            raise PermissionDeniedError("Only platform admins may use another organization's tables (scope).")
        if org_id is None and write and not actor.is_superuser:
            raise PermissionDeniedError("Global tables are read-only: only platform admins may change them.")
        return org_id

    async def _find(self, org_id: str | None, app: str, name: str) -> DocTable | None:
        owner = col(DocTable.organization_id)
        stmt = select(DocTable).where(
            owner.is_(None) if org_id is None else owner == org_id,
            col(DocTable.app) == app,
            col(DocTable.name) == name,
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def _locate(
        self, actor: Actor, table: Any, scope: Any, app: Any, *, write: bool
    ) -> tuple[str | None, str, str, DocTable | None]:
        """Validate the table address and find the table (None when it does not exist)."""
        name = check_table_name(table)
        app_name = check_app(app)
        org_id = await self.resolve_scope(actor, scope, write=write)
        return org_id, app_name, name, await self._find(org_id, app_name, name)

    async def _create_table(
        self,
        org_id: str | None,
        app: str,
        name: str,
        description: str | None = None,
        table_schema: dict[str, Any] | None = None,
    ) -> DocTable | None:
        """Insert a table; None when one with this address was created meanwhile (unique constraint)."""
        table = DocTable(organization_id=org_id, app=app, name=name, description=description, table_schema=table_schema)
        try:
            async with self.session.begin_nested():  # a concurrent creator wins; our transaction survives
                self.session.add(table)
                await self.session.flush()
        except IntegrityError:
            return None
        return table

    async def _table_for_write(self, actor: Actor, table: Any, scope: Any, app: Any) -> DocTable:
        """The table to write documents to, created when missing."""
        org_id, app_name, name, found = await self._locate(actor, table, scope, app, write=True)
        if found is not None:
            return found
        created = await self._create_table(org_id, app_name, name) or await self._find(org_id, app_name, name)
        if created is None:  # created and dropped again by others meanwhile
            raise ConflictError(f"Table {name!r} changed while it was being created; retry.")
        return created

    # ----- tables ----------------------------------------------------------------------------------
    async def create(
        self,
        actor: Actor,
        name: Any,
        description: Any = None,
        table_schema: Any = None,
        scope: Any = None,
        app: Any = None,
    ) -> DocTable:
        """Create a table explicitly.

        ``table_schema`` is stored with the table for documentation and tools; documents
        are not validated against it. Its ``indexes`` (a list of field names) are the fields
        the table declares as indexed: filters on them read an index
        (:mod:`app.services.tables.indexes`).

        Raises:
            ConflictError: A table of this name exists in the scope and app.
        """
        name = check_table_name(name, "name")
        app_name = check_app(app)
        desc = optional_text(description, "description", 2000)
        if table_schema is not None and not isinstance(table_schema, dict):
            raise InvalidInputError.field("table_schema", "must be a JSON object or null")
        if table_schema is not None:
            check_data(table_schema, "table_schema")
        declared = check_indexed_fields(table_schema["indexes"]) if table_schema and "indexes" in table_schema else []
        org_id = await self.resolve_scope(actor, scope, write=True)
        existing = await self._find(org_id, app_name, name)
        created = None if existing else await self._create_table(org_id, app_name, name, desc, table_schema)
        if created is None:
            raise ConflictError(f"A table named {name!r} already exists in this scope.")
        if declared:
            await indexes.set_indexes(self.session, created, declared)
        return created

    async def all_tables(self, actor: Actor) -> builtins.list[tuple[DocTable, builtins.list[str]]]:
        """Every table of every organization with its indexed fields (platform admins; the admin page)."""
        actor.require_admin("list every organization's tables")
        tables = list((await self.session.execute(select(DocTable))).scalars())
        declared = (await self.session.execute(select(col(DocTableIndex.table_id), col(DocTableIndex.field)))).all()
        fields: dict[str, builtins.list[str]] = {}
        for table_id, field in declared:
            fields.setdefault(table_id, []).append(field)
        tables.sort(key=lambda t: (t.organization_id or "", t.app, t.name))
        return [(t, sorted(fields.get(t.id, []))) for t in tables]

    async def set_indexed_fields_by_id(self, actor: Actor, table_id: str, fields: Any) -> builtins.list[str]:
        """:meth:`set_indexed_fields` of any table, by id (platform admins; the admin page).

        Raises:
            NotFoundError: No such table.
        """
        actor.require_admin("declare indexes on any table")
        table = await self.session.get(DocTable, table_id)
        if table is None:
            raise NotFoundError(f"Table {table_id!r} not found.")
        scope = table.organization_id or GLOBAL_SCOPE
        return await self.set_indexed_fields(actor, table.name, fields, scope=scope, app=table.app or None)

    async def indexed_fields(self, actor: Actor, table: Any, scope: Any = None, app: Any = None) -> builtins.list[str]:
        """The fields a table declares as indexed, sorted.

        Raises:
            NotFoundError: No such table in the scope.
        """
        *_, target = await self._locate(actor, table, scope, app, write=False)
        if target is None:
            raise NotFoundError(f"Table {table!r} not found.")
        return sorted(".".join(path) for path in await indexes.declared(self.session, target.id))

    async def set_indexed_fields(
        self, actor: Actor, table: Any, fields: Any, scope: Any = None, app: Any = None
    ) -> builtins.list[str]:
        """Declare exactly ``fields`` as the table's indexed fields (builds and drops indexes).

        The table's ``table_schema["indexes"]`` is kept equal to the declaration.

        Raises:
            NotFoundError: No such table in the scope.
            InvalidInputError: Bad field names, or too many.
        """
        names = check_indexed_fields(fields, "indexes")
        *_, target = await self._locate(actor, table, scope, app, write=True)
        if target is None:
            raise NotFoundError(f"Table {table!r} not found.")
        result = await indexes.set_indexes(self.session, target, names)
        target.table_schema = {**(target.table_schema or {}), "indexes": result}
        await self.session.flush()
        return result

    async def list(self, actor: Actor, scope: Any = None, app: Any = None) -> builtins.list[DocTable]:
        """Tables of the scope and app, by name."""
        app_name = check_app(app)
        org_id = await self.resolve_scope(actor, scope, write=False)
        owner = col(DocTable.organization_id)
        stmt = select(DocTable).where(
            owner.is_(None) if org_id is None else owner == org_id, col(DocTable.app) == app_name
        )
        # Sorted here, by code point: the databases' collations would disagree on case.
        return sorted((await self.session.execute(stmt)).scalars(), key=lambda t: t.name)

    async def delete(self, actor: Actor, name: Any, scope: Any = None, app: Any = None) -> bool:
        """Delete a table and all its documents; False when there is no such table."""
        *_, table = await self._locate(actor, name, scope, app, write=True)
        if table is None:
            return False
        await indexes.drop_all(self.session, table.id)
        await self.session.execute(delete(Document).where(col(Document.table_id) == table.id))
        await self.session.delete(table)
        await self.session.flush()
        return True

    # ----- documents -------------------------------------------------------------------------------
    async def insert(
        self, actor: Actor, table: Any, data: Any, id: Any = None, scope: Any = None, app: Any = None
    ) -> Document:
        """Insert a document (the table is created when missing); ``id`` defaults to a UUID.

        Raises:
            ConflictError: A document with this id exists (use upsert to replace it).
        """
        doc_id = None if id is None else check_document_id(id)
        data = check_data(data)
        target = await self._table_for_write(actor, table, scope, app)
        if doc_id is not None and await self.session.get(Document, (target.id, doc_id)) is not None:
            raise ConflictError(
                f"Document {doc_id!r} already exists in table {target.name!r}; use upsert to replace it."
            )
        now = utcnow()
        document = Document(
            table_id=target.id,
            id=doc_id or new_id(),
            data=data,
            dates=date_mirror(data),
            created_at=now,
            updated_at=now,
        )
        self.session.add(document)
        await self.session.flush()
        return document

    async def upsert(
        self, actor: Actor, table: Any, id: Any, data: Any, scope: Any = None, app: Any = None
    ) -> Document:
        """Create the document or replace its data (``created_at`` is kept); atomic on both databases."""
        doc_id = check_document_id(id)
        data = check_data(data)
        target = await self._table_for_write(actor, table, scope, app)
        now, dates = utcnow(), date_mirror(data)
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        insert = dialect_insert(Document).values(
            table_id=target.id, id=doc_id, data=data, dates=dates, created_at=now, updated_at=now
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[col(Document.table_id), col(Document.id)],
            set_={"data": insert.excluded.data, "dates": insert.excluded.dates, "updated_at": now},
        ).returning(col(Document.created_at))
        created_at = (await self.session.execute(stmt)).scalar_one()
        # Written with Core (INSERT .. ON CONFLICT); the returned object is a detached copy.
        return Document(table_id=target.id, id=doc_id, data=data, dates=dates, created_at=created_at, updated_at=now)

    async def get(self, actor: Actor, table: Any, doc_id: Any, scope: Any = None, app: Any = None) -> Document:
        """One document.

        Raises:
            NotFoundError: No such table or document in the scope.
        """
        found = await self._document(actor, table, doc_id, scope, app, write=False)
        if found is None:
            raise NotFoundError(f"Document {str(doc_id)[:120]!r} not found in table {table!r}.")
        return found

    async def _document(
        self, actor: Actor, table: Any, doc_id: Any, scope: Any, app: Any, *, write: bool
    ) -> Document | None:
        doc_id = check_document_id(doc_id, "doc_id")
        *_, target = await self._locate(actor, table, scope, app, write=write)
        if target is None:
            return None
        stmt = select(Document).where(col(Document.table_id) == target.id, col(Document.id) == doc_id)
        if write:
            stmt = stmt.with_for_update()  # Postgres: concurrent merges apply one after the other
        return (await self.session.execute(stmt)).scalars().first()

    async def update(
        self, actor: Actor, table: Any, doc_id: Any, data: Any, scope: Any = None, app: Any = None
    ) -> Document:
        """Merge ``data`` into the document's top-level keys (a key set to null stays, as null).

        Raises:
            NotFoundError: No such table or document in the scope.
        """
        patch = check_data(data)
        document = await self._document(actor, table, doc_id, scope, app, write=True)
        if document is None:
            raise NotFoundError(f"Document {str(doc_id)[:120]!r} not found in table {table!r}.")
        merged = check_data({**document.data, **patch})  # the merge can pass the size limit
        document.data = merged
        document.dates = date_mirror(merged)
        document.updated_at = utcnow()
        await self.session.flush()
        return document

    async def delete_document(self, actor: Actor, table: Any, doc_id: Any, scope: Any = None, app: Any = None) -> bool:
        """Delete one document; False when it (or its table) does not exist."""
        doc_id = check_document_id(doc_id, "doc_id")
        *_, target = await self._locate(actor, table, scope, app, write=True)
        if target is None:
            return False
        result = await self.session.execute(
            delete(Document).where(col(Document.table_id) == target.id, col(Document.id) == doc_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # ----- queries ---------------------------------------------------------------------------------
    async def query(
        self,
        actor: Actor,
        table: Any,
        where: Any = None,
        order_by: Any = None,
        order_dir: Any = "asc",
        limit: Any = None,
        offset: Any = 0,
        scope: Any = None,
        app: Any = None,
    ) -> DocumentList:
        """One page of the documents matching ``where`` and the total number of matches.

        ``limit`` None means :data:`MAX_LIMIT`. A missing table is an empty result.
        See :mod:`app.services.tables.query` for the operators and the ordering rules.
        """
        conditions = parse_where(where)
        order = parse_order(order_by, order_dir)
        limit, offset = check_page(limit, offset)
        *_, target = await self._locate(actor, table, scope, app, write=False)
        if target is None:
            return DocumentList(documents=[], total=0, limit=limit, offset=offset)
        documents: builtins.list[DocumentData] = []
        if limit:
            matching = await self._select(
                target,
                conditions,
                col(Document.id),
                col(Document.data),
                col(Document.created_at),
                col(Document.updated_at),
            )
            stmt = matching.order_by(*compile_order(order, self._dialect, _COLUMNS)).limit(limit).offset(offset)
            documents = [
                DocumentData(id=row[0], table_id=target.id, data=row[1], created_at=row[2], updated_at=row[3])
                for row in await self.session.execute(stmt)
            ]
        if limit and len(documents) < limit and (documents or offset == 0):
            # A short page is the last one: the total follows without a second scan.
            total = offset + len(documents)
        else:
            total = (await self.session.execute(await self._select(target, conditions, func.count()))).scalar_one()
        return DocumentList(documents=documents, total=total, limit=limit, offset=offset)

    async def count(self, actor: Actor, table: Any, where: Any = None, scope: Any = None, app: Any = None) -> int:
        """Number of documents matching ``where`` (0 for a missing table)."""
        conditions = parse_where(where)
        *_, target = await self._locate(actor, table, scope, app, write=False)
        if target is None:
            return 0
        stmt = await self._select(target, conditions, func.count())
        return int((await self.session.execute(stmt)).scalar_one())

    async def _select(self, target: DocTable, conditions: builtins.list[Condition], *columns: Any) -> Select[Any]:
        """SELECT ``columns`` of ``target``'s documents matching ``conditions`` (a query or a count)."""
        if self._dialect == "postgresql" and not self._custom_plans:
            # Every operand is a bound parameter, and asyncpg prepares statements: after a few runs
            # Postgres may switch to a generic plan built without the values (no JSON key, no
            # containment document), measured 3-6x slower here. Plan each query with its values;
            # SET LOCAL ends with this transaction.
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            self._custom_plans = True
        paths = {cond.path for cond in conditions}
        indexed = frozenset(paths & await indexes.declared(self.session, target.id)) if paths else frozenset()
        stmt = select(*columns).select_from(Document)
        if not indexed:
            return stmt.where(col(Document.table_id) == target.id, compile_where(conditions, self._dialect, _COLUMNS))
        # The table id inlined: a partial index (WHERE table_id = '<id>') serves only that literal.
        in_table = col(Document.table_id) == literal_column(indexes.table_literal(target.id))
        stmt = stmt.where(in_table, compile_where(conditions, self._dialect, _COLUMNS, indexed))
        chosen = indexes.best_index(target.id, conditions, indexed)
        if chosen is not None and self._dialect == "sqlite":
            # Without statistics SQLite rates "table_id = ?" on (table_id, created_at) as selective as
            # the field's index, and takes it for the order it gives: the whole table is then read.
            stmt = stmt.execution_options(sqlite_indexed_by=("document", chosen))
        return stmt
