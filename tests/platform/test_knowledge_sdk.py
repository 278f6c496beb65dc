"""``bifrost.knowledge`` against a live server: store, replace, search, get, delete, namespaces, scoping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import bifrost
from bifrost import knowledge
from bifrost.errors import ValidationError
from tests.platform.conftest import World


@contextmanager
def sdk_as(world: World, key: str, org: str | None = None) -> Iterator[None]:
    """Point the SDK at the live server with ``key`` (and an organization for admins)."""
    bifrost.configure(world.server.url, key, org=org)
    try:
        yield
    finally:
        bifrost.configure(None)


@pytest.fixture
def as_alice(world: World) -> Iterator[None]:
    with sdk_as(world, world.alice_key):
        yield


async def test_store_search_get_delete_round_trip(as_alice: None) -> None:
    doc_id = await knowledge.store(
        "Employees may return hardware within 30 days of purchase for a full refund.",
        namespace="sdk-policies",
        key="refund",
        metadata={"team": "finance", "version": 1},
    )
    await knowledge.store(
        "A forgotten password is reset on the self-service portal after a phone verification.",
        namespace="sdk-policies",
        key="password",
    )
    results = await knowledge.search("how long can I bring back a laptop for my money?", namespace="sdk-policies")
    assert results[0].id == doc_id and results[0].key == "refund"
    assert results[0].namespace == "sdk-policies" and results[0].metadata == {"team": "finance", "version": 1}
    assert isinstance(results[0].score, float) and results[0].score > results[1].score
    assert "30 days" in results[0].content
    got = await knowledge.get("refund", namespace="sdk-policies")
    assert got is not None and got.id == doc_id and got.content.startswith("Employees may return")
    assert await knowledge.get("nope", namespace="sdk-policies") is None
    assert await knowledge.delete("refund", namespace="sdk-policies") is True
    assert await knowledge.delete("refund", namespace="sdk-policies") is False
    assert await knowledge.get("refund", namespace="sdk-policies") is None
    remaining = await knowledge.search("refund for a laptop", namespace="sdk-policies")
    assert [r.key for r in remaining] == ["password"]


async def test_same_key_replaces_the_document_and_all_its_chunks(as_alice: None, world: World) -> None:
    long_text = " ".join(f"Paragraph {i} explains the legacy VPN concentrator setting number {i}." for i in range(120))
    first = await knowledge.store(long_text, namespace="sdk-replace", key="vpn")
    with world.server.client(world.alice_key) as client:
        old_chunks = client.get(f"/api/knowledge/documents/{first}/chunks").json()
    assert len(old_chunks) > 3  # long enough to be split
    second = await knowledge.store("The VPN now uses WireGuard on port 51820.", namespace="sdk-replace", key="vpn")
    assert second == first  # same document, replaced in place
    with world.server.client(world.alice_key) as client:
        chunks = client.get(f"/api/knowledge/documents/{first}/chunks").json()
    assert [c["content"] for c in chunks] == ["The VPN now uses WireGuard on port 51820."]
    hits = await knowledge.search("legacy VPN concentrator setting", namespace="sdk-replace", limit=10)
    assert len(hits) == 1 and "WireGuard" in hits[0].content
    namespaces = {n.name: n for n in await knowledge.list_namespaces()}
    assert namespaces["sdk-replace"].document_count == 1


async def test_several_namespaces_min_score_and_metadata_filters(as_alice: None) -> None:
    await knowledge.store("The guest Wi-Fi password rotates every Monday.", namespace="sdk-net", key="wifi")
    await knowledge.store(
        "Printers on floor two use toner TN-660.", namespace="sdk-facilities", key="toner", metadata={"floor": 2}
    )
    await knowledge.store(
        "Printers on floor five use toner TN-760.", namespace="sdk-facilities", key="toner5", metadata={"floor": 5}
    )
    both = await knowledge.search("printer ink cartridge", namespace=["sdk-net", "sdk-facilities"], limit=10)
    assert {r.namespace for r in both} == {"sdk-net", "sdk-facilities"}
    assert both[0].namespace == "sdk-facilities"
    strict = await knowledge.search("printer ink cartridge", namespace=["sdk-net", "sdk-facilities"], min_score=0.3)
    assert strict and all(r.score >= 0.3 for r in strict) and "wifi" not in {r.key for r in strict}
    floor5 = await knowledge.search("printer ink", namespace="sdk-facilities", metadata_filter={"floor": 5})
    assert [r.key for r in floor5] == ["toner5"]
    high = await knowledge.search("printer ink", namespace="sdk-facilities", metadata_filter={"floor": {"$gte": 3}})
    assert [r.key for r in high] == ["toner5"]
    any_of = await knowledge.search("printer ink", namespace="sdk-facilities", metadata_filter={"floor": [2, 9]})
    assert [r.key for r in any_of] == ["toner"]
    assert await knowledge.search("printer", namespace="sdk-empty-namespace") == []
    assert await knowledge.delete_namespace("sdk-facilities") == 2
    assert await knowledge.delete_namespace("sdk-facilities") == 0
    assert "sdk-facilities" not in {n.name for n in await knowledge.list_namespaces()}


async def test_bad_input_is_a_validation_error_naming_the_field(as_alice: None) -> None:
    cases = [
        (knowledge.store("   ", namespace="sdk-bad"), "content"),
        (knowledge.store("text", namespace="../etc"), "namespace"),
        (knowledge.store("text", namespace="sdk-bad", key=""), "key"),
        (knowledge.search("", namespace="sdk-bad"), "query"),
        (knowledge.search("q", namespace="sdk-bad", limit=0), "limit"),
        (knowledge.search("q", namespace="sdk-bad", min_score=2), "min_score"),
        (knowledge.search("q", namespace=[]), "namespaces"),
        (knowledge.search("q", namespace="sdk-bad", metadata_filter={"a": {"$regex": "x"}}), "metadata_filter"),
    ]
    for call, field in cases:
        with pytest.raises(ValidationError) as err:
            await call
        assert err.value.errors and err.value.errors[0]["field"] == field, (field, err.value)


def test_http_status_codes_for_bad_requests(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        response = client.post("/api/knowledge/documents", json={"content": "x", "metadata": [1]})
        assert response.status_code == 422 and response.json()["extra"]["errors"][0]["field"] == "metadata"
        assert client.post("/api/knowledge/search", json={"query": "x", "limit": "5"}).status_code == 422
        nul = client.post("/api/knowledge/documents", json={"content": "a\x00b", "namespace": "sdk-bad"})
        assert nul.status_code == 422 and nul.json()["extra"]["errors"][0]["field"] == "content"
        control = client.post("/api/knowledge/documents", json={"content": "ok", "namespace": "sdk-bad", "key": "a\nb"})
        assert control.status_code == 422 and control.json()["extra"]["errors"][0]["field"] == "key"
        assert client.get("/api/knowledge/documents/no-such-id").status_code == 404
        assert client.get("/api/knowledge/jobs/no-such-id").status_code == 404
        not_json = client.post(
            "/api/knowledge/documents", content=b"not json", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert client.post("/api/knowledge/documents", content=b"not json").status_code == 415  # JSON bodies only
        created = client.post("/api/knowledge/namespaces", json={"name": "sdk-created", "description": "empty"})
        assert created.status_code == 201
        assert client.post("/api/knowledge/namespaces", json={"name": "sdk-created"}).status_code == 409
        names = {n["name"]: n for n in client.get("/api/knowledge/namespaces").json()}
        assert names["sdk-created"]["document_count"] == 0


async def test_organizations_never_see_each_others_knowledge(world: World) -> None:
    with sdk_as(world, world.alice_key):
        alice_doc = await knowledge.store("Org A's alarm code is 4471.", namespace="shared-name", key="alarm")
    with sdk_as(world, world.bob_key):
        await knowledge.store("Org B's parking spaces are 10 to 14.", namespace="shared-name", key="parking")
        results = await knowledge.search("alarm code", namespace="shared-name", limit=20)
        assert [r.key for r in results] == ["parking"]
        assert await knowledge.get("alarm", namespace="shared-name") is None
        assert await knowledge.delete("alarm", namespace="shared-name") is False
        assert await knowledge.delete_namespace("shared-name") == 1  # only Bob's own document
        assert all(n.organization_id != world.org_a for n in await knowledge.list_namespaces())
    with world.server.client(world.bob_key) as bob:
        # By id too: not found, exactly like an id that does not exist.
        assert bob.get(f"/api/knowledge/documents/{alice_doc}").status_code == 404
        assert bob.get(f"/api/knowledge/documents/{alice_doc}/chunks").status_code == 404
        assert bob.delete(f"/api/knowledge/documents/{alice_doc}").status_code == 404
        assert bob.get(f"/api/sdk/v1/knowledge/documents/{alice_doc}").status_code == 404
    with sdk_as(world, world.alice_key):
        still = await knowledge.get("alarm", namespace="shared-name")
        assert still is not None and still.id == alice_doc


async def test_global_knowledge_is_read_by_everyone_and_written_by_admins_only(world: World) -> None:
    with sdk_as(world, world.admin_key):  # acting globally
        global_id = await knowledge.store(
            "Company-wide: the service desk answers on +1 555 0100 around the clock.", namespace="handbook", key="desk"
        )
    with sdk_as(world, world.alice_key):
        own_id = await knowledge.store(
            "Org A: call the service desk of Org A on extension 200.", namespace="handbook", key="desk"
        )
        results = await knowledge.search("phone number of the helpdesk", namespace="handbook", limit=5)
        assert {r.id for r in results} == {global_id, own_id}
        assert {r.organization_id for r in results} == {world.org_a, None}
        # get() prefers the organization's document over the global one with the same key.
        assert (await knowledge.get("desk", namespace="handbook")).id == own_id  # type: ignore[union-attr]
        assert await knowledge.delete("desk", namespace="handbook") is True  # her own
        assert (await knowledge.get("desk", namespace="handbook")).id == global_id  # type: ignore[union-attr]
        assert await knowledge.delete("desk", namespace="handbook") is False  # the global one is not hers
        ns = [n for n in await knowledge.list_namespaces() if n.name == "handbook"]
        assert {n.organization_id for n in ns} == {world.org_a, None}
    with world.server.client(world.alice_key) as alice:
        assert alice.delete(f"/api/knowledge/documents/{global_id}").status_code == 403
        assert alice.get(f"/api/knowledge/documents/{global_id}").status_code == 200
    with sdk_as(world, world.bob_key):
        assert [r.id for r in await knowledge.search("helpdesk phone", namespace="handbook")] == [global_id]
    with sdk_as(world, world.admin_key, org="Org B"):
        # An admin acting in Org B writes into Org B and reads Org B + global, never Org A.
        b_id = await knowledge.store("Org B's desk is in room 12.", namespace="handbook", key="desk-b")
        seen = {r.organization_id for r in await knowledge.search("desk", namespace="handbook", limit=20)}
        assert seen == {world.org_b, None}
    with sdk_as(world, world.admin_key):  # acting globally: global only
        assert [r.id for r in await knowledge.search("desk", namespace="handbook", limit=20)] == [global_id]
        assert await knowledge.get("desk-b", namespace="handbook") is None
    with sdk_as(world, world.bob_key):
        assert await knowledge.delete("desk-b", namespace="handbook") is True
    assert b_id
