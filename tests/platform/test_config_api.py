"""``/config`` over real HTTP on SQLite and Postgres: types, org-then-global, isolation, admin-only global writes, bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import IntegrityError

from tests.platform.config_support import cworld, run, set_value
from tests.platform.conftest import World

__all__ = ["cworld"]  # the fixture, imported for pytest

TYPED_VALUES = [
    ("text", "string"),
    ("", "string"),
    ("ünïcødé ✓ \n tab\t", "string"),
    (42, "int"),
    (-9223372036854775808, "int"),
    (10**30, "int"),
    (True, "bool"),
    (False, "bool"),
    (2.5, "json"),
    ({"a": [1, {"b": None}], "c": "d"}, "json"),
    ([1, "two", 3.0, False], "json"),
]


def test_values_keep_their_type_over_the_api(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        for i, (value, type_name) in enumerate(TYPED_VALUES):
            stored = alice.put(f"/api/config/typed_{i}", json={"value": value})
            assert stored.status_code == 200, stored.text
            assert stored.json()["type"] == type_name
            got = alice.get(f"/api/config/typed_{i}").json()
            assert got["value"] == value and type(got["value"]) is type(value), (value, got)
            assert got["type"] == type_name and got["organization_id"] == cworld.org_a
        listing = alice.get("/api/config").json()
        for i, (value, _) in enumerate(TYPED_VALUES):
            assert listing[f"typed_{i}"] == value


@pytest.mark.parametrize(
    ("value", "python_type"),
    [("hello", "str"), (7, "int"), (True, "bool"), ({"k": [1, 2]}, "dict"), ([1, "x"], "list"), (0.25, "float")],
)
def test_values_keep_their_type_inside_an_execution(cworld: World, value: object, python_type: str) -> None:
    result = set_value(cworld, cworld.bob_key, f"sdk_{python_type}", value)
    assert result["value"] == value and result["type"] == python_type
    # and another execution reads the same value back
    again = run(cworld, cworld.bob_key, "config_get", key=f"sdk_{python_type}")["result"]
    assert again["value"] == value and again["type"] == python_type


def test_overwriting_changes_value_and_type_and_keeps_the_description(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        alice.put("/api/config/retype", json={"value": "1", "description": "how many"})
        changed = alice.put("/api/config/retype", json={"value": 1}).json()
        assert changed["type"] == "int" and changed["value"] == 1 and changed["description"] == "how many"
        cleared = alice.put("/api/config/retype", json={"value": 2, "description": ""}).json()
        assert cleared["description"] is None
        entries = [e for e in alice.get("/api/config?detail=true").json() if e["key"] == "retype"]
        assert len(entries) == 1 and entries[0]["value"] == 2


def test_the_organization_value_wins_over_the_global_one(cworld: World) -> None:
    with (
        cworld.server.client(cworld.admin_key) as admin,
        cworld.server.client(cworld.alice_key) as alice,
        cworld.server.client(cworld.bob_key) as bob,
    ):
        assert admin.put("/api/config/region", json={"value": "eu"}).json()["organization_id"] is None
        assert alice.put("/api/config/region", json={"value": "a-local"}).json()["organization_id"] == cworld.org_a
        assert alice.get("/api/config/region").json()["value"] == "a-local"
        assert bob.get("/api/config/region").json()["value"] == "eu"
        assert alice.get("/api/config").json()["region"] == "a-local"
        assert bob.get("/api/config").json()["region"] == "eu"

        rows = [e for e in alice.get("/api/config?detail=true").json() if e["key"] == "region"]
        assert [(e["organization_id"], e["value"], e["overridden"]) for e in rows] == [
            (cworld.org_a, "a-local", False),
            (None, "eu", True),
        ]
        # a platform admin looks at one organization, or at global values only
        admin_view = admin.get("/api/config", params={"org_id": "Org A"}).json()
        assert admin_view["region"] == "a-local"
        global_rows = admin.get("/api/config", params={"org_id": "GLOBAL", "detail": "true"}).json()
        assert all(e["organization_id"] is None for e in global_rows) and "region" in {e["key"] for e in global_rows}
        for unknown in ("no such org", "nul\x00org", "x" * 300):
            assert admin.get("/api/config", params={"org_id": unknown}).status_code == 404

    assert run(cworld, cworld.alice_key, "config_get", key="region")["result"]["value"] == "a-local"
    assert run(cworld, cworld.bob_key, "config_get", key="region")["result"]["value"] == "eu"
    assert run(cworld, cworld.alice_key, "config_list")["result"]["region"] == "a-local"

    with cworld.server.client(cworld.alice_key) as alice:
        # deleting the organization's value uncovers the global one, which a user cannot delete
        assert alice.delete("/api/config/region").json() == {"deleted": True}
        assert alice.get("/api/config/region").json()["value"] == "eu"
        assert alice.delete("/api/config/region").json() == {"deleted": False}
        assert alice.get("/api/config/region").json()["value"] == "eu"
    assert run(cworld, cworld.alice_key, "config_get", key="region")["result"]["value"] == "eu"


def test_an_unset_key_is_404_and_the_sdk_default(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        missing = alice.get("/api/config/never_set")
        assert missing.status_code == 404 and "never_set" in missing.json()["detail"]
    assert run(cworld, cworld.alice_key, "config_get", key="never_set")["result"]["value"] == "<unset>"
    assert run(cworld, cworld.alice_key, "config_delete", key="never_set")["result"] is False


def test_organizations_cannot_read_list_or_delete_each_others_values(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice, cworld.server.client(cworld.bob_key) as bob:
        alice.put("/api/config/a_private", json={"value": "alpha"})
        alice.put("/api/config/a_token", json={"value": "sk-a-private", "is_secret": True})
        for path in ("/api/config/a_private", "/api/config/a_token", "/api/sdk/v1/config/a_private"):
            assert bob.get(path).status_code == 404
        assert "a_private" not in bob.get("/api/config").json()
        assert "a_private" not in {e["key"] for e in bob.get("/api/config?detail=true").json()}
        assert bob.delete("/api/config/a_private").json() == {"deleted": False}
        # naming another organization is refused the same way whether or not it exists
        for org in (cworld.org_a, "Org A", "no-such-org", "GLOBAL"):
            assert bob.get("/api/config", params={"org_id": org}).status_code == 403
            assert bob.get("/api/config/a_private", params={"org_id": org}).status_code == 403
            assert bob.put("/api/config/a_private", params={"org_id": org}, json={"value": "b"}).status_code == 403
            assert bob.delete("/api/config/a_private", params={"org_id": org}).status_code == 403
        assert alice.get("/api/config/a_private").json()["value"] == "alpha"
    bob_view = run(cworld, cworld.bob_key, "config_list")["result"]
    assert "a_private" not in bob_view and "a_token" not in bob_view
    assert run(cworld, cworld.bob_key, "config_get", key="a_token")["result"]["value"] == "<unset>"
    assert run(cworld, cworld.bob_key, "config_delete", key="a_private")["result"] is False
    with cworld.server.client(cworld.alice_key) as alice:
        assert alice.get("/api/config/a_private").json()["value"] == "alpha"


def test_only_platform_admins_write_global_values(cworld: World) -> None:
    with cworld.server.client(cworld.admin_key) as admin, cworld.server.client(cworld.alice_key) as alice:
        assert admin.put("/api/config/global_only", json={"value": 1}).status_code == 200
        refused = alice.put("/api/config/global_only", params={"org_id": "GLOBAL"}, json={"value": 2})
        assert refused.status_code == 403
        assert alice.delete("/api/config/global_only", params={"org_id": "GLOBAL"}).status_code == 403
        # a write by a user lands in their organization and leaves the global value alone
        assert alice.put("/api/config/global_only", json={"value": 3}).json()["organization_id"] == cworld.org_a
        assert admin.get("/api/config/global_only").json()["value"] == 1
        # an admin writes into an organization by naming it
        into_b = admin.put("/api/config/from_admin", params={"org_id": "Org B"}, json={"value": "hi"})
        assert into_b.json()["organization_id"] == cworld.org_b
    # a workflow run by an admin in no organization writes global; run by a user, it writes its organization
    assert set_value(cworld, cworld.admin_key, "global_from_run", "g")["value"] == "g"
    with cworld.server.client(cworld.bob_key) as bob:
        assert bob.get("/api/config/global_from_run").json()["organization_id"] is None
        assert bob.get("/api/config/from_admin").json()["value"] == "hi"


@pytest.mark.parametrize(
    ("key", "body", "field"),
    [
        ("k1", {"value": None}, "value"),
        ("k1", {}, "value"),
        ("k1", {"value": 1, "is_secret": "yes"}, "is_secret"),
        ("k1", {"value": 5, "is_secret": True}, "value"),
        ("k1", {"value": {"a": 1}, "is_secret": True}, "value"),
        ("k1", {"value": "", "is_secret": True}, "value"),
        ("k1", {"value": "x", "colour": "red"}, "colour"),
        ("k1", {"value": "a\u0000b"}, "value"),
        ("k1", {"value": "x", "description": 5}, "description"),
        ("k1", {"value": "x", "description": "d" * 2001}, "description"),
        ("k1", {"value": "x" * (256 * 1024 + 1)}, "value"),
        ("%20leading-space", {"value": 1}, "key"),
        ("trailing-slash%2F", {"value": 1}, "key"),
        ("%2Fleading-slash", {"value": 1}, "key"),
        ("empty%2F%2Fsegment", {"value": 1}, "key"),
        ("tab%09inside", {"value": 1}, "key"),
        ("nul%00inside", {"value": 1}, "key"),
        ("bad-utf8-%FF", {"value": 1}, "key"),
        ("k" * 256, {"value": 1}, "key"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    cworld: World, key: str, body: dict, field: str
) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        response = alice.put(f"/api/config/{key}", json=body)
        assert response.status_code == 422, response.text
        assert field in [e["field"] for e in response.json()["extra"]["errors"]]
        assert alice.get(f"/api/config/{key}").status_code in (404, 422)


def test_malformed_bodies_and_keys_are_client_errors(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        for content in (b"[1, 2]", b'"text"', b"{not json", b'{"value": NaN}'):
            response = alice.put("/api/config/shape", content=content, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (content, response.text)
        assert alice.get("/api/config/%20bad").status_code == 422
        assert alice.delete("/api/config/bad%2F").status_code == 422
        assert alice.get("/api/config", params={"detail": "maybe"}).status_code == 400
        assert alice.get("/api/config/shape").status_code == 404


def test_the_sdk_refuses_values_it_cannot_store_with_a_typed_error(cworld: World) -> None:
    problems = run(cworld, cworld.alice_key, "config_bad_values")["result"]
    assert problems["bytes"].startswith("ValidationError:") and "bytes" in problems["bytes"]
    assert problems["set"].startswith("ValidationError:") and "set" in problems["set"]
    assert problems["nan"].startswith("ValidationError:") and "nan" in problems["nan"]
    assert problems["nested"].startswith("ValidationError:") and "value['a'][0]" in problems["nested"]
    assert problems["get"] == "ValidationError: key: must be a non-empty string"
    assert problems["delete"] == "ValidationError: key: must be a non-empty string"
    assert problems["dots"] == "ValidationError: key: must not be '.' or '..'"
    # a key the server refuses comes back as a ValidationError naming the field
    assert problems["key"].startswith("ValidationError: key:") and "'field': 'key'" in problems["key"]
    with cworld.server.client(cworld.alice_key) as alice:
        assert alice.get("/api/config/bad").status_code == 404


def test_one_global_value_per_key_is_enforced_by_the_database(cworld: World) -> None:
    async def insert_twice() -> None:
        from app.db import transaction
        from app.models.config_entry import ConfigEntry

        async with transaction(cworld.server.platform.sessions) as session:
            session.add(ConfigEntry(key="dup", config_type="string", value="1"))
            await session.flush()
            session.add(ConfigEntry(key="dup", config_type="string", value="2"))
            await session.flush()

    with pytest.raises(IntegrityError):
        cworld.server.call(insert_twice)
    with cworld.server.client(cworld.admin_key) as admin:
        assert admin.get("/api/config/dup").status_code == 404  # rolled back as a whole


def test_keys_may_hold_spaces_slashes_and_any_letters_exactly(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        for encoded, key in (
            ("halo%2Fapi%20url", "halo/api url"),
            ("caf%C3%A9.%E2%9C%93", "café.✓"),
            ("a%2F..%2Fb", "a/../b"),
            ("MiXeD_Case:1-2", "MiXeD_Case:1-2"),
        ):
            stored = alice.put(f"/api/config/{encoded}", json={"value": key})
            assert stored.status_code == 200 and stored.json()["key"] == key
            assert alice.get(f"/api/config/{encoded}").json()["value"] == key
        # "a/b" and "a" are different keys; case matters
        assert alice.get("/api/config/halo").status_code == 404
        assert alice.get("/api/config/mixed_case:1-2").status_code == 404
        assert {"halo/api url", "café.✓", "a/../b"} <= set(alice.get("/api/config").json())
    result = set_value(cworld, cworld.alice_key, "halo/sdk key", "through the SDK")
    assert result["value"] == "through the SDK"
    assert run(cworld, cworld.alice_key, "config_delete", key="halo/sdk key")["result"] is True


def test_a_key_set_through_the_sdk_route_is_the_same_value(cworld: World) -> None:
    with cworld.server.client(cworld.alice_key) as alice:
        body = {"value": {"nested": True}, "description": "via SDK prefix"}
        assert alice.put("/api/sdk/v1/config/sdk_route", json=body).status_code == 200
        assert alice.get("/api/config/sdk_route").json()["value"] == {"nested": True}
        assert json.loads(json.dumps(alice.get("/api/sdk/v1/config").json()))["sdk_route"] == {"nested": True}


def test_a_change_is_seen_by_the_next_read_at_once(cworld: World) -> None:
    """Lookups are cached briefly; a write through this server clears them, so no read is stale."""
    with cworld.server.client(cworld.alice_key) as alice, cworld.server.client(cworld.admin_key) as admin:
        admin.put("/api/config/fresh", json={"value": "global v1"})
        assert run(cworld, cworld.alice_key, "config_get", key="fresh")["result"]["value"] == "global v1"
        admin.put("/api/config/fresh", json={"value": "global v2"})
        assert run(cworld, cworld.alice_key, "config_get", key="fresh")["result"]["value"] == "global v2"
        alice.put("/api/config/fresh", json={"value": 3})
        assert run(cworld, cworld.alice_key, "config_get", key="fresh")["result"]["value"] == 3
        alice.delete("/api/config/fresh")
        admin.delete("/api/config/fresh")
        assert run(cworld, cworld.alice_key, "config_get", key="fresh")["result"]["value"] == "<unset>"
        admin.put("/api/config/fresh", json={"value": "back"})
        assert run(cworld, cworld.alice_key, "config_get", key="fresh")["result"]["value"] == "back"
