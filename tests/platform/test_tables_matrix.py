"""Document tables on SQLite and on Postgres: every operator and ordering gives the same answer.

One live server per database (module scope); every case runs on both. The data set is
built so that a wrong implementation gives a different answer: numbers stored as strings,
booleans next to 1, dates with different offsets, mixed case, LIKE/GLOB metacharacters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database
from tests.platform.conftest import World, start_world

DOCS: dict[str, dict[str, Any]] = {
    "a": {
        "name": "Acme",
        "status": "active",
        "amount": 100,
        "score": 1.5,
        "flag": True,
        "when": "2024-01-05",
        "ts": "2024-01-05T10:00:00+02:00",  # 08:00Z
        "tags": ["x", "y"],
        "address": {"city": "Oslo"},
        "code": "10",
    },
    "b": {
        "name": "acme labs",
        "status": "inactive",
        "amount": 20,
        "score": 10,
        "flag": False,
        "when": "2024-01-10",
        "ts": "2024-01-05T09:00:00Z",
        "deleted_at": None,
        "address": {"city": "Bergen"},
        "code": 10,
    },
    "c": {
        "name": "Beta_Co",
        "status": "active",
        "amount": 1000,
        "score": -3,
        "flag": 1,
        "when": "2023-12-31",
        "ts": "2024-01-05T08:30:00.500Z",
        "deleted_at": "2024-02-01",
        "code": "9",
    },
    "d": {"name": "Gamma 100%", "status": "ACTIVE", "amount": "500", "when": "2024-1-5", "ts": "not a date"},
    "e": {"name": "delta*[1]", "amount": 100.0, "score": None, "nested": {"deep": {"x": 2}}},
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server on a fresh SQLite file, then on a fresh Postgres database."""
    tmp = tmp_path_factory.mktemp(f"tables-{request.param}")
    url: str | None = f"sqlite+aiosqlite:///{tmp / 'test.db'}"
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    world = start_world(Path(tmp), url)
    try:
        yield world
    finally:
        world.server.stop()
        if request.param == "postgres" and url:
            drop_postgres_database(url)


@pytest.fixture(scope="module")
def alice(db_world: World) -> Iterator[httpx.Client]:
    with db_world.server.client(db_world.alice_key) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(alice: httpx.Client) -> str:
    """Table ``ops`` with documents a..e, inserted in that order."""
    for doc_id, data in DOCS.items():
        response = alice.post("/api/tables/ops/documents", json={"id": doc_id, "data": data})
        assert response.status_code == 201, response.text
    return "ops"


def _ids(alice: httpx.Client, table: str, **body: Any) -> list[str]:
    response = alice.post(f"/api/tables/{table}/query", json=body)
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["documents"]]


WHERE_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"a", "b", "c", "d", "e"}),
    ({"status": "active"}, {"a", "c"}),  # exact: not "ACTIVE"
    ({"status": {"eq": "active"}}, {"a", "c"}),
    ({"amount": 100}, {"a", "e"}),  # 100 == 100.0
    ({"code": "10"}, {"a"}),  # type-exact: the string
    ({"code": 10}, {"b"}),  # ... and the number
    ({"flag": True}, {"a"}),  # not the 1 of c
    ({"flag": 1}, {"c"}),  # not the true of a
    ({"flag": False}, {"b"}),
    ({"amount": {"gt": 50}}, {"a", "c", "e"}),  # numeric, "500" (a string) is not a number
    ({"amount": {"gte": 100, "lt": 1000}}, {"a", "e"}),  # two operators on one field
    ({"amount": {"lte": 20}}, {"b"}),
    ({"score": {"lt": 0}}, {"c"}),
    ({"code": {"gt": "5"}}, {"c"}),  # text comparison: "9" > "5" > "10"; the number 10 is not text
    ({"when": {"gt": "2024-01-01"}}, {"a", "b"}),  # dates; "2024-1-5" is not ISO-8601, so no date
    ({"when": {"gte": "2024-01-05", "lte": "2024-01-05T23:59:59"}}, {"a"}),
    ({"ts": {"gt": "2024-01-05T08:45:00Z"}}, {"b"}),  # as text, a's "...10:00:00+02:00" would match too
    ({"ts": {"lt": "2024-01-05T10:00:00+01:00"}}, {"a", "c"}),  # 09:00Z, exclusive
    ({"ts": {"lte": "2024-01-05T10:00:00+01:00"}}, {"a", "b", "c"}),
    ({"ts": {"gte": "2024-01-05T08:30:00.5Z"}}, {"b", "c"}),  # fractional seconds
    ({"ts": {"gt": "2024-01-05T08:30:00.400+00:00"}}, {"b", "c"}),
    ({"name": {"like": "Acme%"}}, {"a"}),  # case-sensitive on both databases
    ({"name": {"like": "%acme%"}}, {"b"}),
    ({"name": {"ilike": "%ACME%"}}, {"a", "b"}),
    ({"name": {"like": "Beta_Co"}}, {"c"}),
    ({"name": {"like": "Beta\\_Co"}}, {"c"}),
    ({"name": {"like": "Beta\\_C_"}}, {"c"}),
    ({"name": {"like": "Gamma 100\\%"}}, {"d"}),
    ({"name": {"like": "delta*[1]"}}, {"e"}),  # GLOB metacharacters are literal in LIKE
    ({"name": {"like": "delta?[1]"}}, set()),
    ({"name": {"like": "_elta%"}}, {"e"}),
    ({"name": {"ilike": "_ETA%"}}, {"c"}),
    ({"amount": {"like": "1%"}}, set()),  # like matches strings only
    ({"status": {"in": ["active", "inactive"]}}, {"a", "b", "c"}),
    ({"code": {"in": [10, "9"]}}, {"b", "c"}),
    ({"flag": {"in": [False]}}, {"b"}),
    ({"amount": {"in": [100, "500"]}}, {"a", "d", "e"}),
    ({"tags": {"in": ["x"]}}, set()),  # a list is not one of the scalars
    ({"status": {"in": []}}, set()),
    ({"deleted_at": {"is_null": True}}, {"a", "b", "d", "e"}),  # missing or JSON null
    ({"deleted_at": None}, {"a", "b", "d", "e"}),
    ({"deleted_at": {"is_null": False}}, {"c"}),
    ({"score": {"is_null": True}}, {"d", "e"}),
    ({"address.city": "Oslo"}, {"a"}),
    ({"address.city": {"in": ["Oslo", "Bergen"]}}, {"a", "b"}),
    ({"nested.deep.x": {"gte": 2}}, {"e"}),
    ({"address.city.more": {"is_null": True}}, {"a", "b", "c", "d", "e"}),
    ({"status": "active", "amount": {"gt": 500}}, {"c"}),
    ({"status": {"ilike": "active"}, "name": {"like": "%a%"}}, {"c", "d"}),
]


@pytest.mark.parametrize(("where", "expected"), WHERE_CASES, ids=[str(w) for w, _ in WHERE_CASES])
def test_where_operators(alice: httpx.Client, seeded: str, where: dict[str, Any], expected: set[str]) -> None:
    assert set(_ids(alice, seeded, where=where)) == expected
    count = alice.post(f"/api/tables/{seeded}/count", json={"where": where})
    assert count.status_code == 200 and count.json() == {"count": len(expected)}


ORDER_CASES: list[tuple[str, str, list[str]]] = [
    # numbers by value (ties by id), then strings; desc is the exact reverse
    ("amount", "asc", ["b", "a", "e", "c", "d"]),
    ("amount", "desc", ["d", "c", "e", "a", "b"]),
    # missing and null values last in both directions
    ("score", "asc", ["c", "a", "b", "d", "e"]),
    ("score", "desc", ["b", "a", "c", "e", "d"]),
    # date strings chronologically (offsets applied), before other strings
    ("ts", "asc", ["a", "c", "b", "d", "e"]),
    ("ts", "desc", ["b", "c", "a", "d", "e"]),
    # strings by code point: upper case before lower case, on both databases
    ("name", "asc", ["a", "c", "d", "b", "e"]),
    # numbers, then strings, then booleans
    ("flag", "asc", ["c", "b", "a", "d", "e"]),
    ("address.city", "asc", ["b", "a", "c", "d", "e"]),
    ("created_at", "asc", ["a", "b", "c", "d", "e"]),
    ("created_at", "desc", ["e", "d", "c", "b", "a"]),
]


@pytest.mark.parametrize(
    ("order_by", "order_dir", "expected"), ORDER_CASES, ids=[f"{o}-{d}" for o, d, _ in ORDER_CASES]
)
def test_order_by(alice: httpx.Client, seeded: str, order_by: str, order_dir: str, expected: list[str]) -> None:
    assert _ids(alice, seeded, order_by=order_by, order_dir=order_dir) == expected


def test_default_order_limit_offset(alice: httpx.Client, seeded: str) -> None:
    assert _ids(alice, seeded) == ["a", "b", "c", "d", "e"]  # created_at
    page = alice.post(f"/api/tables/{seeded}/query", json={"order_by": "amount", "limit": 2, "offset": 1}).json()
    assert [d["id"] for d in page["documents"]] == ["a", "e"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert page["documents"][0]["data"] == DOCS["a"]
    beyond = alice.post(f"/api/tables/{seeded}/query", json={"offset": 10}).json()
    assert beyond["documents"] == [] and beyond["total"] == 5
    only_total = alice.post(f"/api/tables/{seeded}/query", json={"where": {"status": "active"}, "limit": 0}).json()
    assert only_total["documents"] == [] and only_total["total"] == 2
    default = alice.post(f"/api/tables/{seeded}/query", json={}).json()
    assert default["limit"] == 1000 and default["offset"] == 0


def test_order_by_updated_at(alice: httpx.Client) -> None:
    for doc_id in ("u1", "u2", "u3"):
        alice.post("/api/tables/touched/documents", json={"id": doc_id, "data": {"v": 0}})
    assert alice.patch("/api/tables/touched/documents/u1", json={"data": {"v": 1}}).status_code == 200
    assert _ids(alice, "touched", order_by="updated_at", order_dir="desc") == ["u1", "u3", "u2"]


def test_every_function(alice: httpx.Client) -> None:
    table = f"crud_{uuid.uuid4().hex[:8]}"
    created = alice.post("/api/tables", json={"name": table, "description": "Customers", "table_schema": {"a": 1}})
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["name"] == table and info["description"] == "Customers" and info["table_schema"] == {"a": 1}
    assert info["organization_id"] and info["created_at"]
    assert alice.post("/api/tables", json={"name": table}).status_code == 409
    assert table in {t["name"] for t in alice.get("/api/tables").json()}

    auto = alice.post(f"/api/tables/{table}/documents", json={"data": {"name": "Acme"}}).json()
    assert str(uuid.UUID(auto["id"])) == auto["id"] and auto["table_id"] == info["id"]
    assert auto["created_at"] == auto["updated_at"]
    mine = alice.post(f"/api/tables/{table}/documents", json={"id": "alice@a.example", "data": {"n": 1, "k": "v"}})
    assert mine.status_code == 201 and mine.json()["id"] == "alice@a.example"
    duplicate = alice.post(f"/api/tables/{table}/documents", json={"id": "alice@a.example", "data": {}})
    assert duplicate.status_code == 409 and "upsert" in duplicate.json()["detail"]

    replaced = alice.put(f"/api/tables/{table}/documents/alice@a.example", json={"data": {"n": 2}}).json()
    assert replaced["data"] == {"n": 2}  # replaced, not merged
    assert replaced["created_at"] == mine.json()["created_at"] and replaced["updated_at"] > replaced["created_at"]
    stored = alice.get(f"/api/tables/{table}/documents/alice@a.example").json()
    assert (stored["created_at"], stored["updated_at"]) == (replaced["created_at"], replaced["updated_at"])
    fresh = alice.put(f"/api/tables/{table}/documents/new%20one", json={"data": {"z": True}})
    assert fresh.status_code == 200 and fresh.json()["id"] == "new one"

    merged = alice.patch(f"/api/tables/{table}/documents/alice@a.example", json={"data": {"k": "w", "gone": None}})
    assert merged.json()["data"] == {"n": 2, "k": "w", "gone": None}
    got = alice.get(f"/api/tables/{table}/documents/alice@a.example").json()
    assert got["data"] == {"n": 2, "k": "w", "gone": None}
    assert alice.patch(f"/api/tables/{table}/documents/missing", json={"data": {}}).status_code == 404
    assert alice.get(f"/api/tables/{table}/documents/missing").status_code == 404

    assert alice.delete(f"/api/tables/{table}/documents/new%20one").json() == {"deleted": True}
    assert alice.delete(f"/api/tables/{table}/documents/new%20one").json() == {"deleted": False}
    assert alice.post(f"/api/tables/{table}/count", json={}).json() == {"count": 2}

    assert alice.delete(f"/api/tables/{table}").json() == {"deleted": True}
    assert alice.delete(f"/api/tables/{table}").json() == {"deleted": False}
    assert alice.get(f"/api/tables/{table}/documents/alice@a.example").status_code == 404
    # a missing table reads as empty and is never created by a read
    assert alice.post(f"/api/tables/{table}/query", json={}).json() == {
        "documents": [],
        "total": 0,
        "limit": 1000,
        "offset": 0,
    }
    assert alice.post(f"/api/tables/{table}/count", json={}).json() == {"count": 0}
    assert alice.patch(f"/api/tables/{table}/documents/x", json={"data": {}}).status_code == 404
    assert table not in {t["name"] for t in alice.get("/api/tables").json()}


def test_same_document_id_in_two_tables(alice: httpx.Client) -> None:
    for table in ("twin_a", "twin_b"):
        assert (
            alice.post(f"/api/tables/{table}/documents", json={"id": "same", "data": {"t": table}}).status_code == 201
        )
    assert alice.get("/api/tables/twin_a/documents/same").json()["data"] == {"t": "twin_a"}
    assert alice.get("/api/tables/twin_b/documents/same").json()["data"] == {"t": "twin_b"}


def test_scopes_and_apps_keep_tables_apart(db_world: World, alice: httpx.Client) -> None:
    """Same name in an organization, in two apps and globally: four tables (NULL org and app included)."""
    with db_world.server.client(db_world.admin_key) as admin:
        for params in ({}, {"app": "crm"}, {"app": "erp"}):
            response = alice.post("/api/tables/people/documents", params=params, json={"data": {"in": str(params)}})
            assert response.status_code == 201
        assert (
            admin.post("/api/tables/people/documents", params={"scope": "global"}, json={"data": {}}).status_code == 201
        )
        assert admin.post("/api/tables", params={"scope": "global"}, json={"name": "people"}).status_code == 409
        assert (
            admin.post("/api/tables", params={"scope": "global", "app": "crm"}, json={"name": "people"}).status_code
            == 201
        )
        assert alice.post("/api/tables", params={"app": "crm"}, json={"name": "people"}).status_code == 409
        ids = set()
        for params in ({}, {"app": "crm"}, {"app": "erp"}, {"scope": "global"}, {"scope": "global", "app": "crm"}):
            people = [t for t in alice.get("/api/tables", params=params).json() if t["name"] == "people"]
            assert len(people) == 1, params
            ids.add(people[0]["id"])
        assert len(ids) == 5
        for params, marker in (({}, "{}"), ({"app": "crm"}, "{'app': 'crm'}")):
            docs = alice.post("/api/tables/people/query", params=params, json={}).json()["documents"]
            assert [d["data"]["in"] for d in docs] == [marker]
        assert alice.delete("/api/tables/people", params={"app": "erp"}).json() == {"deleted": True}
        assert alice.post("/api/tables/people/count", params={"app": "crm"}, json={}).json() == {"count": 1}


def test_concurrent_first_inserts_create_one_table(db_world: World) -> None:
    """Racing inserts into a table that does not exist yet: all succeed, one table is created."""
    table = f"race_{uuid.uuid4().hex[:8]}"

    def insert(i: int) -> int:
        with db_world.server.client(db_world.alice_key) as client:
            return client.post(f"/api/tables/{table}/documents", json={"data": {"i": i}}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(insert, range(16)))
    assert statuses == [201] * 16
    with db_world.server.client(db_world.alice_key) as client:
        assert [t["name"] for t in client.get("/api/tables").json()].count(table) == 1
        assert client.post(f"/api/tables/{table}/count", json={}).json() == {"count": 16}


def test_bad_input_is_422_on_each_database(alice: httpx.Client) -> None:
    """Input the database would choke on (NUL characters, a trailing LIKE escape) is refused first."""
    nul = alice.post("/api/tables/ops2/documents", json={"data": {"x": "a\u0000b"}})
    assert nul.status_code == 422 and nul.json()["extra"]["errors"][0]["field"] == "data"
    escape = alice.post("/api/tables/ops2/query", json={"where": {"x": {"like": "ab\\"}}})
    assert escape.status_code == 422 and "escape" in escape.json()["detail"]
    huge = alice.post("/api/tables/ops2/query", json={"where": {"x": {"gt": 2**70}}})
    assert huge.status_code == 422
    assert alice.post("/api/tables/ops2/count", json={}).json() == {"count": 0}  # nothing half-written
