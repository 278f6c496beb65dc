"""The form builder and the roles page's form assignments over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.conftest import World
from tests.platform.pages_support import admin, alice, start_pages_world, text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) for this module."""
    w = start_pages_world(tmp_path_factory.mktemp("builder-pages"))
    try:
        yield w
    finally:
        w.server.stop()


def section_names(page: str) -> list[str]:
    """Field names of the builder's sections, in order."""
    return re.findall(r'name="f\d+_name" value="([^"]*)"', page)


def workflow_id(world: World, name: str) -> str:
    with world.server.client(world.admin_key) as client:
        rows = client.get("/api/workflows").json()
    return next(w["id"] for w in rows if w["name"] == name)


def posted(world: World, sections: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """A builder page's body: settings and one group of inputs per field section."""
    body: dict[str, Any] = {
        "name": "Onboarding",
        "description": "",
        "workflow_id": workflow_id(world, "cf_onboard"),
        "organization_id": world.org_a,
        "access_level": "role_based",
        "is_active": "true",
        "field_count": str(len(sections)),
        "action": "save",
        **settings,
    }
    for i, section in enumerate(sections):
        for key, value in section.items():
            body[f"f{i}_{key}"] = value
    return body


def form_schema(world: World, form_id: str) -> dict[str, Any]:
    with world.server.client(world.admin_key) as client:
        response = client.get(f"/api/forms/{form_id}")
    assert response.status_code == 200
    return dict(response.json())


def test_only_platform_admins_use_the_builder(world: World) -> None:
    with alice(world) as page:
        assert page.get("/admin/forms/new").status_code == 403
        assert page.post("/admin/forms/save", posted(world, [])).status_code == 403


def test_new_form_starts_from_the_workflows_parameters(world: World) -> None:
    with admin(world) as page:
        response = page.get("/admin/forms/new", params={"workflow": "cf_onboard"})
    assert response.status_code == 200
    assert section_names(response.text) == ["name", "site", "laptop", "laptop_model", "seats", "contract"]
    assert 'name="f4_default" value="1"' in response.text  # seats defaults to 1


def test_add_remove_and_move_fields_without_saving(world: World) -> None:
    sections = [{"name": "a", "type": "text"}, {"name": "b", "type": "number"}, {"name": "c", "type": "email"}]
    with admin(world) as page:
        added = page.post("/admin/forms/save", posted(world, sections, action="add"))
        moved = page.post("/admin/forms/save", posted(world, sections, action="up:2"))
        removed = page.post("/admin/forms/save", posted(world, sections, action="remove:0"))
    assert section_names(added.text) == ["a", "b", "c", "field_4"]
    assert section_names(moved.text) == ["a", "c", "b"]
    assert re.search(r'<select id="f1_type" name="f1_type">.*?<option value="email" selected>', moved.text, re.S)
    assert section_names(removed.text) == ["b", "c"]
    assert "Onboarding" not in admin_forms(world)  # nothing was saved


def test_saving_stores_the_schema_access_and_roles(world: World) -> None:
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_a}) as client:
        role = client.post("/api/roles", json={"name": "Builders", "description": ""}).json()
    sections = [
        {"name": "name", "type": "text", "label": "Full name", "required": "true", "pattern": "[A-Z].*", "message": "Capital first"},
        {"name": "site", "type": "select", "data_provider": "cf_sites"},
        {"name": "laptop", "type": "checkbox"},
        {"name": "laptop_model", "type": "radio", "options": "MacBook = mac\nThinkPad = tp", "visible_field": "laptop"},
        {"name": "seats", "type": "number", "default": "2", "min": "1", "max": "5"},
        {"name": "contract", "type": "file", "accept": ".txt, text/plain"},
    ]  # fmt: skip
    with admin(world) as page:
        response = page.post("/admin/forms/save", posted(world, sections, name="Built form", role_ids=role["id"]))
        assert response.status_code == 303, text(response.text)[:2000]
        form_id = response.headers["location"].rsplit("/", 1)[1]
        edit = page.get(f"/admin/forms/{form_id}")
    stored = form_schema(world, form_id)
    assert stored["name"] == "Built form" and stored["access_level"] == "role_based"
    assert stored["organization_id"] == world.org_a
    fields = {f["name"]: f for f in stored["form_schema"]["fields"]}
    assert list(fields) == ["name", "site", "laptop", "laptop_model", "seats", "contract"]
    assert fields["name"]["required"] is True
    assert (
        fields["name"]["validation"]["pattern"] == "[A-Z].*"
        and fields["name"]["validation"]["message"] == "Capital first"
    )
    assert fields["site"]["data_provider"] == "cf_sites"
    assert fields["laptop_model"]["options"] == [
        {"label": "MacBook", "value": "mac"},
        {"label": "ThinkPad", "value": "tp"},
    ]
    assert fields["laptop_model"]["visible_when"] == {"field": "laptop", "equals": None}
    assert fields["seats"]["default"] == 2 and fields["seats"]["validation"]["min"] == 1
    assert fields["contract"]["accept"] == [".txt", "text/plain"]
    with world.server.client(world.admin_key) as client:
        assert client.get(f"/api/forms/{form_id}/roles").json() == [role["id"]]
    # The builder shows the stored form again.
    assert section_names(edit.text) == list(fields)
    assert f'value="{role["id"]}" checked' in edit.text


def test_invalid_schema_shows_the_services_messages_next_to_the_field(world: World) -> None:
    no_choices = [{"name": "ok", "type": "text"}, {"name": "pick", "type": "select"}]
    bad_name = [{"name": "ok", "type": "text"}, {"name": "2bad", "type": "text"}]
    with admin(world) as page:
        choices = page.post("/admin/forms/save", posted(world, no_choices))
        named = page.post("/admin/forms/save", posted(world, bad_name))
        unnamed = page.post("/admin/forms/save", posted(world, no_choices[:1], name=""))
    assert choices.status_code == 422
    assert "err-field-0" not in choices.text
    error = re.search(r'id="err-field-1">(.*?)</ul>', choices.text, re.S)
    assert error and "options or a data_provider" in text(error.group(1))
    assert section_names(choices.text) == ["ok", "pick"]  # the input is kept
    assert named.status_code == 422 and 'id="err-field-1"' in named.text and "2bad" in text(named.text)
    assert unnamed.status_code == 422 and 'id="err-name"' in unnamed.text
    assert "Onboarding" not in admin_forms(world)


def admin_forms(world: World) -> list[str]:
    with world.server.client(world.admin_key) as client:
        return [f["name"] for f in client.get("/api/forms").json()]


def test_role_page_grants_and_takes_away_a_form(world: World) -> None:
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_a}) as client:
        role = client.post("/api/roles", json={"name": "Starters", "description": ""}).json()
        assert client.post(f"/api/roles/{role['id']}/users", json={"user_ids": [world.alice_id]}).status_code == 204
        form = client.post(
            "/api/forms",
            json={"name": "Granted by role", "workflow_id": "cf_onboard", "access_level": "role_based", "organization_id": world.org_a},
        ).json()  # fmt: skip
    with alice(world) as page:
        assert page.get(f"/forms/{form['id']}").status_code == 404  # refused: no role grants it yet
    with admin(world) as page:
        # Roles belong to an organization: the admin acts in Org A to manage them.
        assert page.post("/session/org", {"org_id": world.org_a, "next": "/"}).status_code == 303
        role_page = page.get(f"/admin/roles/{role['id']}").text
        assert "Granted by role" in role_page
        granted = page.post(f"/admin/roles/{role['id']}/forms", {"form_ids": form["id"]})
        assert granted.status_code == 303
        assert f'value="{form["id"]}" checked' in page.get(f"/admin/roles/{role['id']}").text
    with alice(world) as page:
        assert page.get(f"/forms/{form['id']}").status_code == 200
        assert "Granted by role" in page.get("/forms").text
    with admin(world) as page:
        assert page.post("/session/org", {"org_id": world.org_a, "next": "/"}).status_code == 303
        assert page.post(f"/admin/roles/{role['id']}/forms", {}).status_code == 303
    with alice(world) as page:
        assert page.get(f"/forms/{form['id']}").status_code == 404
    with alice(world) as page:
        assert page.post(f"/admin/roles/{role['id']}/forms", {"form_ids": form["id"]}).status_code == 403


def test_delete_removes_the_form(world: World) -> None:
    with world.server.client(world.admin_key) as client:
        form = client.post(
            "/api/forms", json={"name": "Short lived", "workflow_id": "cf_onboard", "organization_id": world.org_a}
        ).json()
    with admin(world) as page:
        assert page.post(f"/admin/forms/{form['id']}/delete").status_code == 303
        assert page.get(f"/admin/forms/{form['id']}").status_code == 404
