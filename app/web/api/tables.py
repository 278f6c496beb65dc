"""The tables API: document tables and their documents (JSON API and SDK API).

Every route takes the query parameters ``scope`` (None, ``global`` or an organization
id) and ``app``; the service resolves and checks them. Bodies are plain JSON objects
checked by the service, so that a bad value is a 422 naming its field.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import Parameter
from litestar.types import ControllerRouterHandler

from app.db import read_transaction
from app.services.actor import Actor
from app.services.errors import reject_unknown_fields
from app.services.tables.service import TableService, document_data, table_info
from app.web.api.schemas import (
    Deleted,
    DocumentInsert,
    DocumentWrite,
    TableCountBody,
    TableCreate,
    TableQueryBody,
    documented_body,
)
from app.web.deps import db, get_platform
from bifrost.types import DocumentData, DocumentList, TableInfo

# "scope" is Litestar's reserved name for the ASGI scope: the query parameter gets an alias.
Scope = Annotated[str | None, Parameter(query="scope", description="None, 'global' or an organization id")]

_CREATE_FIELDS = {"name", "description", "table_schema"}
_INSERT_FIELDS = {"id", "data"}
_DATA_FIELDS = {"data"}
_QUERY_FIELDS = {"where", "order_by", "order_dir", "limit", "offset"}
_COUNT_FIELDS = {"where"}


class TableCount(TypedDict):
    """How many documents match."""

    count: int


class TableController(Controller):
    """Tables of the caller's organization (or global / another organization via ``scope``)."""

    path = "/tables"
    tags = ["tables"]

    @post("/", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        data: Annotated[dict[str, Any], documented_body(TableCreate, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> TableInfo:
        """Create a table explicitly (409 when it exists)."""
        reject_unknown_fields(data, _CREATE_FIELDS)
        async with db(request) as session:
            table = await TableService(session).create(
                actor, data.get("name"), data.get("description"), data.get("table_schema"), scope_, app
            )
            return table_info(table)

    @get("/")
    async def list_tables(
        self, request: Request[Any, Any, Any], actor: Actor, scope_: Scope = None, app: str | None = None
    ) -> list[TableInfo]:
        """Tables of the scope and app."""
        async with db(request) as session:
            return [table_info(t) for t in await TableService(session).list(actor, scope_, app)]

    @delete("/{name:str}", status_code=200)
    async def remove(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        name: str,
        scope_: Scope = None,
        app: str | None = None,
    ) -> Deleted:
        """Delete a table and its documents: ``{"deleted": false}`` when there is none."""
        async with db(request) as session:
            return {"deleted": await TableService(session).delete(actor, name, scope_, app)}

    @post("/{table:str}/documents", status_code=201)
    async def insert(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        data: Annotated[dict[str, Any], documented_body(DocumentInsert, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> DocumentData:
        """Insert a document (``{"id"?, "data"}``); the table is created when missing."""
        reject_unknown_fields(data, _INSERT_FIELDS)
        async with db(request) as session:
            document = await TableService(session).insert(actor, table, data.get("data"), data.get("id"), scope_, app)
            return document_data(document)

    @put("/{table:str}/documents/{doc_id:str}")
    async def upsert(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        doc_id: str,
        data: Annotated[dict[str, Any], documented_body(DocumentWrite, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> DocumentData:
        """Create or replace a document (``{"data"}``)."""
        reject_unknown_fields(data, _DATA_FIELDS)
        async with db(request) as session:
            document = await TableService(session).upsert(actor, table, doc_id, data.get("data"), scope_, app)
            return document_data(document)

    @get("/{table:str}/documents/{doc_id:str}")
    async def get_document(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        doc_id: str,
        scope_: Scope = None,
        app: str | None = None,
    ) -> DocumentData:
        """One document (404 when it or its table does not exist)."""
        async with db(request) as session:
            return document_data(await TableService(session).get(actor, table, doc_id, scope_, app))

    @patch("/{table:str}/documents/{doc_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        doc_id: str,
        data: Annotated[dict[str, Any], documented_body(DocumentWrite, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> DocumentData:
        """Merge ``{"data"}`` into a document's top-level keys (404 when it does not exist)."""
        reject_unknown_fields(data, _DATA_FIELDS)
        async with db(request) as session:
            document = await TableService(session).update(actor, table, doc_id, data.get("data"), scope_, app)
            return document_data(document)

    @delete("/{table:str}/documents/{doc_id:str}", status_code=200)
    async def remove_document(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        doc_id: str,
        scope_: Scope = None,
        app: str | None = None,
    ) -> Deleted:
        """Delete one document: ``{"deleted": false}`` when there is none."""
        async with db(request) as session:
            return {"deleted": await TableService(session).delete_document(actor, table, doc_id, scope_, app)}

    @post("/{table:str}/query", status_code=200)
    async def query(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        data: Annotated[dict[str, Any], documented_body(TableQueryBody, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> DocumentList:
        """Query documents: ``{"where", "order_by", "order_dir", "limit", "offset"}``."""
        reject_unknown_fields(data, _QUERY_FIELDS)
        # A filter on an undeclared field reads the whole table: on SQLite it runs on a read
        # connection in a thread, never holding the connection (and event loop) runs use.
        async with read_transaction(get_platform(request.app.state).sessions) as session:
            result = await TableService(session).query(
                actor,
                table,
                where=data.get("where"),
                order_by=data.get("order_by"),
                order_dir=data.get("order_dir", "asc"),
                limit=data.get("limit"),
                offset=data.get("offset", 0),
                scope=scope_,
                app=app,
            )
            return result

    @post("/{table:str}/count", status_code=200)
    async def count(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        table: str,
        data: Annotated[dict[str, Any], documented_body(TableCountBody, closed=True)],
        scope_: Scope = None,
        app: str | None = None,
    ) -> TableCount:
        """Count matching documents: ``{"where"}`` → ``{"count": n}``."""
        reject_unknown_fields(data, _COUNT_FIELDS)
        async with read_transaction(get_platform(request.app.state).sessions) as session:
            return {"count": await TableService(session).count(actor, table, data.get("where"), scope_, app)}


# Route handlers served under both /api and /api/sdk/v1 (SDK) unless the module says otherwise.
CONTROLLERS: list[ControllerRouterHandler] = [TableController]
