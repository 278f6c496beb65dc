"""Document tables (``bifrost.tables``): org-scoped JSON documents with queries.

Every function returns the spec's pydantic models (attribute access).
``scope``: None = the execution's organization, ``"global"`` = global, an
organization id = that organization (platform admins only). ``app`` keeps
tables of different applications apart.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from bifrost import _client
from bifrost.errors import ValidationError
from bifrost.types import DocumentData, DocumentList, TableInfo


def _scope(scope: str | None, app: str | None) -> dict[str, Any]:
    return {"scope": scope, "app": app}


def _t(name: str, field: str = "table") -> str:
    # A '/' or a dot segment cannot travel inside one URL path segment (the server would see
    # another route): refuse it here with the same error the platform gives for bad names.
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        message = f"invalid {field} {name!r}: must be non-empty, without '/', and not '.' or '..'"
        raise ValidationError(message, [{"field": field, "message": message}])
    return quote(name, safe="")


async def create(
    name: str,
    description: str | None = None,
    table_schema: dict | None = None,
    scope: str | None = None,
    app: str | None = None,
) -> TableInfo:
    """Create a table explicitly."""
    body = await _client.call(
        "POST",
        "/tables",
        json={"name": name, "description": description, "table_schema": table_schema},
        params=_scope(scope, app),
    )
    return TableInfo.model_validate(body)


async def list(scope: str | None = None, app: str | None = None) -> builtins.list[TableInfo]:
    """List tables."""
    return [TableInfo.model_validate(r) for r in await _client.call("GET", "/tables", params=_scope(scope, app))]


async def delete(name: str, scope: str | None = None, app: str | None = None) -> bool:
    """Delete a table and all its documents."""
    body = await _client.call_or_none("DELETE", f"/tables/{_t(name)}", params=_scope(scope, app))
    return bool(body and body.get("deleted"))


async def insert(
    table: str, data: dict, id: str | None = None, scope: str | None = None, app: str | None = None
) -> DocumentData:
    """Insert a document (the table is created when missing)."""
    body = await _client.call(
        "POST", f"/tables/{_t(table)}/documents", json={"id": id, "data": data}, params=_scope(scope, app)
    )
    return DocumentData.model_validate(body)


async def upsert(table: str, id: str, data: dict, scope: str | None = None, app: str | None = None) -> DocumentData:
    """Create or replace the document with this id."""
    body = await _client.call(
        "PUT", f"/tables/{_t(table)}/documents/{_t(id, 'id')}", json={"data": data}, params=_scope(scope, app)
    )
    return DocumentData.model_validate(body)


async def get(table: str, doc_id: str, scope: str | None = None, app: str | None = None) -> DocumentData | None:
    """Return a document, or None."""
    body = await _client.call_or_none(
        "GET", f"/tables/{_t(table)}/documents/{_t(doc_id, 'doc_id')}", params=_scope(scope, app)
    )
    return DocumentData.model_validate(body) if body else None


async def update(
    table: str, doc_id: str, data: dict, scope: str | None = None, app: str | None = None
) -> DocumentData | None:
    """Merge ``data`` into a document; None when it does not exist."""
    body = await _client.call_or_none(
        "PATCH", f"/tables/{_t(table)}/documents/{_t(doc_id, 'doc_id')}", json={"data": data}, params=_scope(scope, app)
    )
    return DocumentData.model_validate(body) if body else None


async def delete_document(table: str, doc_id: str, scope: str | None = None, app: str | None = None) -> bool:
    """Delete one document."""
    body = await _client.call_or_none(
        "DELETE", f"/tables/{_t(table)}/documents/{_t(doc_id, 'doc_id')}", params=_scope(scope, app)
    )
    return bool(body and body.get("deleted"))


async def query(
    table: str,
    where: dict | None = None,
    order_by: str | None = None,
    order_dir: str = "asc",
    limit: int | None = None,
    offset: int = 0,
    scope: str | None = None,
    app: str | None = None,
) -> DocumentList:
    """Query documents with ``where`` operators (eq, gt/gte/lt/lte, like, ilike, in, is_null)."""
    body = await _client.call(
        "POST",
        f"/tables/{_t(table)}/query",
        json={"where": where or {}, "order_by": order_by, "order_dir": order_dir, "limit": limit, "offset": offset},
        params=_scope(scope, app),
    )
    return DocumentList.model_validate(body)


async def count(table: str, where: dict | None = None, scope: str | None = None, app: str | None = None) -> int:
    """Count matching documents."""
    body = await _client.call(
        "POST", f"/tables/{_t(table)}/count", json={"where": where or {}}, params=_scope(scope, app)
    )
    return int(body["count"])
