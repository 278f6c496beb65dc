"""Document tables over HTTP: organization isolation, scopes, validation errors, SDK and workflows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import bifrost
from bifrost import tables
from bifrost.errors import PermissionDeniedError, ValidationError
from tests.platform.conftest import World


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[dict[str, httpx.Client]]:
    with (
        world.server.client(world.alice_key) as alice,
        world.server.client(world.bob_key) as bob,
        world.server.client(world.admin_key) as admin,
    ):
        yield {"alice": alice, "bob": bob, "admin": admin}


@pytest.fixture(scope="module")
def alice_doc(clients: dict[str, httpx.Client]) -> dict[str, Any]:
    """Alice's table ``secrets_a`` with one document."""
    response = clients["alice"].post("/api/tables/secrets_a/documents", json={"id": "doc-1", "data": {"v": "alice"}})
    assert response.status_code == 201
    return response.json()


# ----- isolation -----------------------------------------------------------------------------------
def test_bob_cannot_see_alices_tables_or_documents(
    world: World, clients: dict[str, httpx.Client], alice_doc: dict[str, Any]
) -> None:
    bob = clients["bob"]
    assert "secrets_a" not in {t["name"] for t in bob.get("/api/tables").json()}
    assert bob.get("/api/tables/secrets_a/documents/doc-1").status_code == 404
    assert bob.post("/api/tables/secrets_a/query", json={}).json()["total"] == 0
    assert bob.post("/api/tables/secrets_a/count", json={}).json() == {"count": 0}
    assert bob.patch("/api/tables/secrets_a/documents/doc-1", json={"data": {"v": "bob"}}).status_code == 404
    assert bob.delete("/api/tables/secrets_a/documents/doc-1").json() == {"deleted": False}
    assert bob.delete("/api/tables/secrets_a").json() == {"deleted": False}
    # bob writing the same name makes his own table; alice's is untouched
    assert bob.put("/api/tables/secrets_a/documents/doc-1", json={"data": {"v": "bob"}}).status_code == 200
    assert clients["alice"].get("/api/tables/secrets_a/documents/doc-1").json()["data"] == {"v": "alice"}
    assert bob.get("/api/tables/secrets_a/documents/doc-1").json()["table_id"] != alice_doc["table_id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/tables", None),
        ("POST", "/api/tables", {"name": "x"}),
        ("DELETE", "/api/tables/secrets_a", None),
        ("POST", "/api/tables/secrets_a/documents", {"data": {}}),
        ("PUT", "/api/tables/secrets_a/documents/doc-1", {"data": {}}),
        ("GET", "/api/tables/secrets_a/documents/doc-1", None),
        ("PATCH", "/api/tables/secrets_a/documents/doc-1", {"data": {}}),
        ("DELETE", "/api/tables/secrets_a/documents/doc-1", None),
        ("POST", "/api/tables/secrets_a/query", {}),
        ("POST", "/api/tables/secrets_a/count", {}),
    ],
)
def test_scope_naming_another_org_is_403_on_every_route(
    world: World, clients: dict[str, httpx.Client], alice_doc: dict[str, Any], method: str, path: str, body: Any
) -> None:
    for user, other_org in (("bob", world.org_a), ("alice", world.org_b), ("alice", "no-such-org")):
        response = clients[user].request(method, path, params={"scope": other_org}, json=body)
        assert response.status_code == 403, (user, response.text)
    assert clients["alice"].get("/api/tables/secrets_a/documents/doc-1").json()["data"] == {"v": "alice"}


def test_users_may_name_their_own_org_and_admins_any(
    world: World, clients: dict[str, httpx.Client], alice_doc: dict[str, Any]
) -> None:
    own = clients["alice"].get("/api/tables/secrets_a/documents/doc-1", params={"scope": world.org_a})
    assert own.status_code == 200
    admin = clients["admin"]
    seen = admin.get("/api/tables/secrets_a/documents/doc-1", params={"scope": world.org_a})
    assert seen.status_code == 200 and seen.json()["data"] == {"v": "alice"}
    assert admin.put(
        "/api/tables/from_admin/documents/x", params={"scope": world.org_b}, json={"data": {"by": "admin"}}
    ).json()["data"] == {"by": "admin"}
    assert clients["bob"].get("/api/tables/from_admin/documents/x").json()["data"] == {"by": "admin"}
    assert admin.get("/api/tables", params={"scope": "no-such-org"}).status_code == 404
    # an admin acting in an organization (X-Bifrost-Org) uses it by default
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as acting:
        assert acting.get("/api/tables/secrets_a/documents/doc-1").status_code == 200


def test_global_tables_are_readable_by_all_and_writable_by_admins(
    world: World, clients: dict[str, httpx.Client]
) -> None:
    admin, alice = clients["admin"], clients["alice"]
    created = admin.post("/api/tables", params={"scope": "global"}, json={"name": "catalog", "description": "shared"})
    assert created.status_code == 201 and created.json()["organization_id"] is None
    assert (
        admin.put("/api/tables/catalog/documents/sku-1", json={"data": {"price": 10}}).status_code == 200
    )  # admin w/o org
    glob = {"scope": "global"}
    assert alice.get("/api/tables/catalog/documents/sku-1", params=glob).json()["data"] == {"price": 10}
    assert (
        alice.post("/api/tables/catalog/query", params=glob, json={"where": {"price": {"gt": 5}}}).json()["total"] == 1
    )
    assert "catalog" in {t["name"] for t in alice.get("/api/tables", params=glob).json()}
    assert "catalog" not in {t["name"] for t in alice.get("/api/tables").json()}  # not in her organization
    for method, path, body in (
        ("POST", "/api/tables/catalog/documents", {"data": {}}),
        ("PUT", "/api/tables/catalog/documents/sku-1", {"data": {}}),
        ("PATCH", "/api/tables/catalog/documents/sku-1", {"data": {"price": 0}}),
        ("DELETE", "/api/tables/catalog/documents/sku-1", None),
        ("DELETE", "/api/tables/catalog", None),
        ("POST", "/api/tables", {"name": "mine"}),
    ):
        response = alice.request(method, path, params=glob, json=body)
        assert response.status_code == 403 and "admins" in response.json()["detail"], (method, path)
    assert alice.get("/api/tables/catalog/documents/sku-1", params=glob).json()["data"] == {"price": 10}


# ----- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "params", "field", "named"),
    [
        ("/api/tables/t/query", {"where": {"n": {"between": [1, 2]}}}, {}, "where.n", "between"),
        ("/api/tables/t/query", {"where": {"n": {}}}, {}, "where.n", "operator"),
        ("/api/tables/t/count", {"where": {"n": {"gtx": 1}}}, {}, "where.n", "gtx"),
        ("/api/tables/t/query", {"where": {"a;drop table document": 1}}, {}, "where", "a;drop table document"),
        ("/api/tables/t/query", {"where": {"a..b": 1}}, {}, "where", "a..b"),
        ("/api/tables/t/query", {"where": [1]}, {}, "where", "object"),
        ("/api/tables/t/query", {"where": {"n": [1, 2]}}, {}, "where.n", "in"),
        ("/api/tables/t/query", {"where": {"n": {"gt": True}}}, {}, "where.n", "gt"),
        ("/api/tables/t/query", {"where": {"n": {"gt": None}}}, {}, "where.n", "gt"),
        ("/api/tables/t/query", {"where": {"n": {"gt": "2024-1-5"}}}, {}, "where.n", "ISO-8601"),
        ("/api/tables/t/query", {"where": {"n": {"like": 5}}}, {}, "where.n", "like"),
        ("/api/tables/t/query", {"where": {"n": {"in": "abc"}}}, {}, "where.n", "in"),
        ("/api/tables/t/query", {"where": {"n": {"in": [None]}}}, {}, "where.n", "is_null"),
        ("/api/tables/t/query", {"where": {"n": {"is_null": "yes"}}}, {}, "where.n", "is_null"),
        ("/api/tables/t/query", {"order_by": "x y!"}, {}, "order_by", "x y!"),
        ("/api/tables/t/query", {"order_dir": "sideways"}, {}, "order_dir", "asc"),
        ("/api/tables/t/query", {"limit": 1001}, {}, "limit", "1000"),
        ("/api/tables/t/query", {"limit": -1}, {}, "limit", "1000"),
        ("/api/tables/t/query", {"limit": "10"}, {}, "limit", "integer"),
        ("/api/tables/t/query", {"offset": -1}, {}, "offset", "offset"),
        ("/api/tables/t/query", {"offset": 10**12}, {}, "offset", "offset"),
        ("/api/tables/t/query", {"colour": "red"}, {}, "colour", "colour"),
        ("/api/tables/bad%20name!/query", {}, {}, "table", "bad name!"),
        ("/api/tables/.hidden/documents", {"data": {}}, {}, "table", ".hidden"),
        ("/api/tables/t/documents", {"data": {}}, {"app": "my app"}, "app", "my app"),
        ("/api/tables", {"name": "no spaces"}, {}, "name", "no spaces"),
        ("/api/tables", {"name": "ok", "table_schema": [1]}, {}, "table_schema", "object"),
        ("/api/tables/t/documents", {"data": [1, 2]}, {}, "data", "object"),
        ("/api/tables/t/documents", {}, {}, "data", "object"),
        ("/api/tables/t/documents", {"id": "", "data": {}}, {}, "id", "1 to 255"),
        ("/api/tables/t/documents", {"id": 5, "data": {}}, {}, "id", "1 to 255"),
        ("/api/tables/t/documents", {"id": "a/b", "data": {}}, {}, "id", "a/b"),
        ("/api/tables/t/documents", {"id": "x" * 256, "data": {}}, {}, "id", "255"),
        ("/api/tables/t/documents", {"data": {"k": "\u0000"}}, {}, "data", "NUL"),
        ("/api/tables/t/documents", {"data": {"deep": _nested(70)}}, {}, "data", "nested"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    clients: dict[str, httpx.Client], path: str, body: Any, params: dict[str, str], field: str, named: str
) -> None:
    response = clients["alice"].post(path, json=body, params=params)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["extra"]["errors"][0]["field"] == field
    assert named in payload["detail"]


def test_nothing_half_written_after_bad_input(clients: dict[str, httpx.Client]) -> None:
    alice = clients["alice"]
    assert alice.post("/api/tables/untouched/documents", json={"id": "a/b", "data": {}}).status_code == 422
    assert "untouched" not in {t["name"] for t in alice.get("/api/tables").json()}
    alice.put("/api/tables/untouched2/documents/d", json={"data": {"keep": 1}})
    assert alice.patch("/api/tables/untouched2/documents/d", json={"data": {"bad": "\u0000"}}).status_code == 422
    assert alice.get("/api/tables/untouched2/documents/d").json()["data"] == {"keep": 1}


def test_oversized_document_is_refused(clients: dict[str, httpx.Client]) -> None:
    response = clients["alice"].post("/api/tables/big/documents", json={"data": {"blob": "x" * (1024 * 1024)}})
    assert response.status_code == 422 and "bytes" in response.json()["detail"]


# ----- SDK -----------------------------------------------------------------------------------------
@pytest.fixture
def as_alice(world: World) -> Iterator[None]:
    bifrost.configure(world.server.url, world.alice_key)
    yield
    bifrost.configure(None)


async def test_sdk_functions_return_models(as_alice: None, world: World) -> None:
    info = await tables.create("sdk_customers", description="From the SDK", table_schema={"type": "object"})
    assert isinstance(info, bifrost.TableInfo) and info.organization_id == world.org_a
    assert info.description == "From the SDK" and info.table_schema == {"type": "object"}
    assert "sdk_customers" in [t.name for t in await tables.list()]

    doc = await tables.insert("sdk_customers", {"name": "Acme", "status": "active", "revenue": 20000})
    assert isinstance(doc, bifrost.DocumentData) and doc.table_id == info.id and doc.data["name"] == "Acme"
    custom = await tables.insert("sdk_customers", {"name": "TechCo", "revenue": 5000}, id="techco-001")
    assert custom.id == "techco-001"
    settings = await tables.upsert("sdk_settings", id="app-config", data={"theme": "dark"})  # auto-creates
    assert (await tables.upsert("sdk_settings", id="app-config", data={"lang": "en"})).data == {"lang": "en"}
    assert settings.created_at == (await tables.get("sdk_settings", "app-config")).created_at  # type: ignore[union-attr]

    merged = await tables.update("sdk_customers", "techco-001", {"status": "trial"})
    assert merged is not None and merged.data == {"name": "TechCo", "revenue": 5000, "status": "trial"}
    assert await tables.update("sdk_customers", "missing", {"x": 1}) is None
    assert await tables.get("sdk_customers", "missing") is None
    assert await tables.get("no_such_table", "x") is None

    result = await tables.query(
        "sdk_customers", where={"status": "active", "revenue": {"gte": 10000}}, order_by="created_at", order_dir="desc"
    )
    assert isinstance(result, bifrost.DocumentList)
    assert [d.id for d in result.documents] == [doc.id] and result.total == 1 and result.offset == 0
    page = await tables.query("sdk_customers", order_by="revenue", limit=1, offset=1)
    assert [d.id for d in page.documents] == [doc.id] and page.total == 2 and page.limit == 1
    assert await tables.count("sdk_customers") == 2
    assert await tables.count("sdk_customers", where={"name": {"ilike": "%CO"}}) == 1

    assert await tables.delete_document("sdk_customers", "techco-001") is True
    assert await tables.delete_document("sdk_customers", "techco-001") is False
    assert await tables.delete("sdk_customers") is True
    assert await tables.delete("sdk_customers") is False
    assert (await tables.query("sdk_customers")).total == 0


async def test_sdk_apps_and_errors(as_alice: None, world: World) -> None:
    await tables.insert("sdk_items", {"n": 1}, id="same", app="crm")
    await tables.insert("sdk_items", {"n": 2}, id="same", app="erp")
    assert (await tables.get("sdk_items", "same", app="crm")).data == {"n": 1}  # type: ignore[union-attr]
    assert (await tables.get("sdk_items", "same", app="erp")).data == {"n": 2}  # type: ignore[union-attr]
    assert await tables.get("sdk_items", "same") is None
    assert [t.name for t in await tables.list(app="crm")] == ["sdk_items"]

    with pytest.raises(ValidationError) as err:
        await tables.query("sdk_items", where={"n": {"between": [1, 2]}}, app="crm")
    assert err.value.errors[0]["field"] == "where.n" and "between" in str(err.value)
    with pytest.raises(ValidationError, match="bad name"):
        await tables.insert("bad name", {})
    with pytest.raises(ValidationError) as slash:
        await tables.get("sdk_items", "a/b")
    assert slash.value.errors[0]["field"] == "doc_id"
    with pytest.raises(ValidationError, match="already exists"):
        await tables.insert("sdk_items", {}, id="same", app="crm")
    with pytest.raises(PermissionDeniedError):
        await tables.list(scope=world.org_b)
    with pytest.raises(PermissionDeniedError):
        await tables.insert("anything", {}, scope="global")


# ----- inside a workflow (per-execution token) -----------------------------------------------------
def _run(client: httpx.Client, workflow: str, params: dict[str, Any]) -> Any:
    run = client.post(f"/api/workflows/{workflow}/execute?wait=true", json={"params": params}).json()
    assert run["status"] == "Completed", run
    return run["result"]


def test_workflow_uses_every_function_in_its_org(world: World, clients: dict[str, httpx.Client]) -> None:
    result = _run(clients["alice"], "tables_roundtrip", {"table": "wf_customers"})
    assert result["created"] == {
        "name": "wf_customers_explicit",
        "description": "made by a workflow",
        "table_schema": {"type": "object"},
        "organization_id": world.org_a,
    }
    assert result["fixed"]["id"] == "techco-001"
    assert result["replaced"]["data"] == {"name": "TechCo", "revenue": 25000, "tier": "gold"}
    assert result["replaced"]["created_at"] == result["fixed"]["created_at"]
    assert result["merged"] == {"name": "TechCo", "revenue": 25000, "tier": "gold", "status": "churned"}
    assert result["missing"] is None
    assert result["page"] == {"ids": ["techco-001"], "total": 1, "limit": 10}
    assert result["count"] == 1  # "TechCo" ends with "co" ignoring case; "Acme" does not
    assert (result["deleted"], result["deleted_again"], result["get_deleted"]) == (True, False, None)
    assert {"wf_customers", "wf_customers_explicit"} <= set(result["listed"])
    assert result["dropped"] is True
    # the run's tables are alice's organization's: visible to her, not to bob
    assert clients["alice"].get("/api/tables/wf_customers/documents/techco-001").status_code == 200
    assert clients["bob"].get("/api/tables/wf_customers/documents/techco-001").status_code == 404


def test_workflow_gets_typed_errors(world: World, clients: dict[str, httpx.Client]) -> None:
    bad = _run(clients["alice"], "tables_bad_operator", {"table": "wf_customers"})
    assert bad["error"] == "ValidationError" and "between" in bad["message"]
    assert bad["errors"][0]["field"] == "where.amount"
    other = _run(clients["bob"], "tables_in_other_org", {"table": "wf_customers", "org_id": world.org_a})
    assert other["error"] == "PermissionDeniedError"
