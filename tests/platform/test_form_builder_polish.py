"""Issue 19, form builder: a form made from a workflow keeps each parameter's data provider, and the
role list follows the organization chosen."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app.services.forms.schema import schema_from_workflow
from tests.platform.access_support import grant_role
from tests.platform.conftest import World
from tests.platform.pages_support import admin, start_pages_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_pages_world(tmp_path_factory.mktemp("builder"))
    try:
        yield w
    finally:
        w.server.stop()


def test_schema_from_workflow_keeps_data_providers() -> None:
    parameters = [
        {"name": "department", "type": "string", "required": True, "json_schema": {"data_provider": "ff_departments"}},
        {
            "name": "person",
            "type": "string",
            "required": False,
            "json_schema": {
                "anyOf": [{"type": "string", "data_provider": "ff_people"}, {"type": "null"}],
                "data_provider_inputs": {"department": "department"},
            },
        },
        {"name": "groups", "type": "array", "items": "string", "json_schema": {"data_provider": "ff_groups"}},
    ]
    fields = {f["name"]: f for f in schema_from_workflow(parameters)["fields"]}
    assert fields["department"]["type"] == "select" and fields["department"]["data_provider"] == "ff_departments"
    assert fields["person"]["data_provider"] == "ff_people"
    assert fields["person"]["data_provider_inputs"]["department"]["field"] == "department"
    assert fields["groups"]["type"] == "multi_select" and fields["groups"]["data_provider"] == "ff_groups"


def test_new_form_from_a_workflow_shows_its_providers(world: World) -> None:
    with admin(world) as client:
        page = client.get("/admin/forms/new", params={"workflow": "ff_request_access"}).text
    providers = re.findall(r'name="[^"]*data_provider" value="([^"]*)"', page)
    assert set(providers) >= {"ff_departments", "ff_people"}, providers


def test_role_list_follows_the_organization(world: World) -> None:
    grant_role(world, world.org_a, world.alice_id, "Desk A")
    grant_role(world, world.org_b, world.bob_id, "Desk B")
    with admin(world) as client:
        base = {"name": "Request", "workflow_id": "ff_count", "access_level": "role_based", "action": "refresh"}
        in_a = client.post("/admin/forms/save", {**base, "organization_id": world.org_a}).text
        in_b = client.post("/admin/forms/save", {**base, "organization_id": world.org_b}).text
        page = client.get("/admin/forms/new").text
    roles_a = re.search(r'<fieldset[^>]*id="form-roles">.*?</fieldset>', in_a, re.S)
    roles_b = re.search(r'<fieldset[^>]*id="form-roles">.*?</fieldset>', in_b, re.S)
    assert roles_a and "Desk A" in roles_a.group(0) and "Desk B" not in roles_a.group(0)
    assert roles_b and "Desk B" in roles_b.group(0) and "Desk A" not in roles_b.group(0)
    # the organization select asks for that fragment when it changes (htmx, no page script)
    select = re.search(r'<select id="form-org"[^>]*>', page, re.S)
    assert select and 'hx-select="#form-roles"' in select.group(0) and "refresh" in select.group(0)
