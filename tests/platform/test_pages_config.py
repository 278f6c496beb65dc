"""The config and secrets admin page over real HTTP: admins only, types, masked write-only secrets, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platform.conftest import World
from tests.platform.pages_support import admin, alice, start_pages_world, text

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) for this module; the round trip below runs on both databases."""
    w = start_pages_world(tmp_path_factory.mktemp("config-pages"))
    try:
        yield w
    finally:
        w.server.stop()


def stored(world: World, org: str) -> dict[str, dict[str, Any]]:
    """The entries of one scope as the JSON API lists them (platform admin)."""
    with world.server.client(world.admin_key) as client:
        response = client.get("/api/config", params={"detail": "true", "org_id": org})
    assert response.status_code == 200, response.text
    return {e["key"]: e for e in response.json() if (e["organization_id"] or "GLOBAL") == org}


def save(page: Any, org: str, key: str, kind: str, value: str, description: str = "") -> Any:
    return page.post(
        "/admin/config/save", {"org": org, "key": key, "type": kind, "value": value, "description": description}
    )


def test_only_platform_admins_use_the_config_page(world: World) -> None:
    with alice(world) as page:
        assert page.get("/admin/config").status_code == 403
        assert save(page, world.org_a, "x", "string", "y").status_code == 403
        assert page.post("/admin/config/delete", {"org": world.org_a, "key": "x"}).status_code == 403
    assert "x" not in stored(world, world.org_a)


def test_values_are_saved_with_their_type(world: World) -> None:
    with admin(world) as page:
        for key, kind, value in [
            ("site_name", "string", "Contoso HQ"),
            ("retries", "int", "3"),
            ("dry_run", "bool", "true"),
            ("limits", "json", '{"cpu": 2, "tags": ["a"]}'),
        ]:
            response = save(page, world.org_a, key, kind, value, description=f"the {key}")
            assert response.status_code == 303, response.text[:2000]
        listing = page.get("/admin/config", params={"org": world.org_a})
    assert listing.status_code == 200
    entries = stored(world, world.org_a)
    assert entries["site_name"]["value"] == "Contoso HQ" and entries["site_name"]["type"] == "string"
    assert entries["retries"]["value"] == 3 and entries["retries"]["type"] == "int"
    assert entries["dry_run"]["value"] is True and entries["dry_run"]["type"] == "bool"
    assert entries["limits"]["value"] == {"cpu": 2, "tags": ["a"]} and entries["limits"]["type"] == "json"
    assert "Contoso HQ" in listing.text and "the retries" in listing.text


def test_secrets_are_masked_and_write_only(world: World) -> None:
    with admin(world) as page:
        assert save(page, world.org_a, "api_token", "secret", SECRET).status_code == 303
        listing = page.get("/admin/config", params={"org": world.org_a})
        edit = page.get("/admin/config", params={"org": world.org_a, "key": "api_token"})
        # A failed save of a secret does not echo it back either.
        failed = save(page, world.org_a, "bad key/", "secret", SECRET)
    assert SECRET not in listing.text and "********" in listing.text
    assert SECRET not in edit.text
    assert re.search(r'<textarea id="config-value" name="value"[^>]*></textarea>', edit.text)
    assert '<option value="secret" selected>' in edit.text
    assert failed.status_code == 422 and SECRET not in failed.text
    entry = stored(world, world.org_a)["api_token"]
    assert entry["is_secret"] is True and entry["value"] == "********"


def test_invalid_input_is_shown_next_to_its_field_with_the_input_kept(world: World) -> None:
    with admin(world) as page:
        not_int = save(page, world.org_a, "workers", "int", "many")
        bad_json = save(page, world.org_a, "payload", "json", "{oops")
        bad_key = save(page, world.org_a, "", "string", "value")
        bad_bool = save(page, world.org_a, "flag", "bool", "maybe")
    assert not_int.status_code == 422
    assert "whole number" in text(re.search(r'id="err-value">(.*?)</p>', not_int.text, re.S).group(1))  # type: ignore[union-attr]
    assert 'value="workers"' in not_int.text and ">many</textarea>" in not_int.text
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.text
    assert bad_key.status_code == 422 and 'id="err-key"' in bad_key.text
    assert bad_bool.status_code == 422 and "true or false" in bad_bool.text
    assert not {"workers", "payload", "flag"} & set(stored(world, world.org_a))


def test_global_values_show_under_an_organization_and_delete_is_per_scope(world: World) -> None:
    with admin(world) as page:
        assert save(page, "GLOBAL", "region", "string", "eu-west").status_code == 303
        assert save(page, world.org_b, "region", "string", "us-east").status_code == 303
        org_a_page = page.get("/admin/config", params={"org": world.org_a}).text
        org_b_page = page.get("/admin/config", params={"org": world.org_b}).text
        deleted = page.post("/admin/config/delete", {"org": world.org_b, "key": "region"})
    assert "falls back to" in org_a_page and "eu-west" in org_a_page
    assert "us-east" in org_b_page and "(replaced here)" in org_b_page
    assert "us-east" not in org_a_page
    assert deleted.status_code == 303
    assert "region" not in stored(world, world.org_b)
    assert stored(world, "GLOBAL")["region"]["value"] == "eu-west"


def test_config_posts_need_the_csrf_token(world: World) -> None:
    with admin(world) as page:
        response = page.post(
            "/admin/config/save", {"org": world.org_a, "key": "k", "type": "string", "value": "v"}, csrf=False
        )
    assert response.status_code == 403
    assert "k" not in stored(world, world.org_a)


def test_round_trip_on_each_database(tmp_path: Path, database_url: str) -> None:
    w = start_pages_world(tmp_path, database_url)
    try:
        with admin(w) as page:
            assert save(page, w.org_a, "db_value", "json", "[1, 2]").status_code == 303
            assert save(page, w.org_a, "db_secret", "secret", SECRET).status_code == 303
            listing = page.get("/admin/config", params={"org": w.org_a}).text
            assert page.post("/admin/config/delete", {"org": w.org_a, "key": "db_value"}).status_code == 303
        assert "[1, 2]" in text(listing) and SECRET not in listing
        entries = stored(w, w.org_a)
        assert "db_value" not in entries and entries["db_secret"]["value"] == "********"
    finally:
        w.server.stop()
