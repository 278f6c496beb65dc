"""Workflows for the document tables tests (copied into a temporary workspace)."""

from bifrost import tables, workflow
from bifrost.errors import PermissionDeniedError, ValidationError


@workflow
async def tables_roundtrip(table: str) -> dict:
    """Call every tables function from inside a run, using attribute access on the returned models."""
    created = await tables.create(
        f"{table}_explicit", description="made by a workflow", table_schema={"type": "object"}
    )
    auto = await tables.insert(table, {"name": "Acme", "revenue": 5000})
    fixed = await tables.insert(table, {"name": "TechCo", "revenue": 20000}, id="techco-001")
    replaced = await tables.upsert(table, id="techco-001", data={"name": "TechCo", "revenue": 25000, "tier": "gold"})
    merged = await tables.update(table, "techco-001", {"status": "churned"})
    missing = await tables.update(table, "no-such-doc", {"x": 1})
    page = await tables.query(table, where={"revenue": {"gte": 10000}}, order_by="revenue", order_dir="desc", limit=10)
    count = await tables.count(table, where={"name": {"ilike": "%co"}})
    deleted = await tables.delete_document(table, auto.id)
    listed = sorted(t.name for t in await tables.list())
    return {
        "created": {
            "name": created.name,
            "description": created.description,
            "table_schema": created.table_schema,
            "organization_id": created.organization_id,
        },
        "auto_id": auto.id,
        "fixed": {"id": fixed.id, "table_id": fixed.table_id, "created_at": fixed.created_at.isoformat()},
        "replaced": {"data": replaced.data, "created_at": replaced.created_at.isoformat()},
        "merged": merged.data if merged else None,
        "missing": missing,
        "page": {"ids": [d.id for d in page.documents], "total": page.total, "limit": page.limit},
        "count": count,
        "deleted": deleted,
        "deleted_again": await tables.delete_document(table, auto.id),
        "get_deleted": await tables.get(table, auto.id),
        "listed": listed,
        "dropped": await tables.delete(f"{table}_explicit"),
    }


@workflow
async def tables_bad_operator(table: str) -> dict:
    """Report the SDK error for an unknown operator."""
    try:
        await tables.query(table, where={"amount": {"between": [1, 2]}})
    except ValidationError as exc:
        return {"error": "ValidationError", "message": str(exc), "errors": exc.errors}
    return {"error": None}


@workflow
async def tables_in_other_org(table: str, org_id: str) -> dict:
    """Report the SDK error for a scope naming another organization."""
    try:
        await tables.query(table, scope=org_id)
    except PermissionDeniedError as exc:
        return {"error": "PermissionDeniedError", "message": str(exc)}
    return {"error": None}
