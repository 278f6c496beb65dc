"""The forms JSON API: admin CRUD, schema validation (422 naming the field), non-admin writes (403)."""

from __future__ import annotations

from typing import Any

import httpx

from app.models import stable_workflow_id
from tests.platform.conftest import World
from tests.platform.forms_support import create_form

ADD_ID = stable_workflow_id("workflow", "add")

FULL_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "intro", "type": "markdown", "content": "## New starter\nFill in **every** field."},
        {
            "name": "a",
            "type": "number",
            "label": "First number",
            "help_text": "Between 1 and 10",
            "required": True,
            "validation": {"min": 1, "max": 10, "message": "Pick 1 to 10"},
        },
        {"name": "b", "type": "number", "default": 2},
        {
            "name": "email",
            "type": "email",
            "placeholder": "name@example.com",
            "validation": {"pattern": r"[^@]+@a\.example", "message": "Use an a.example address"},
        },
        {
            "name": "size",
            "type": "radio",
            "options": [{"label": "Small", "value": "s"}, {"label": "Large", "value": "l"}],
            "default": "s",
        },
        {
            "name": "colour",
            "type": "select",
            "data_provider": "colours",
            "data_provider_inputs": {"size": {"field": "size"}, "limit": {"value": 5}},
        },
        {"name": "notes", "type": "textarea", "visible_when": {"field": "size", "equals": "l"}},
        {"name": "tags", "type": "multi_select", "options": [{"label": "VIP", "value": "vip"}], "default": []},
        {"name": "start", "type": "date", "default": "2026-01-05"},
        {"name": "at", "type": "datetime"},
        {"name": "agree", "type": "checkbox", "default": False},
        {"name": "contract", "type": "file", "accept": [".pdf"], "multiple": True},
        {"name": "title", "type": "text", "visible_when": {"field": "agree"}},
    ]
}


def _admin(world: World) -> httpx.Client:
    return world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"})


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    return response.json()["extra"]["errors"]  # type: ignore[no-any-return]


def test_admin_creates_reads_updates_and_deletes_a_form(world: World) -> None:
    with _admin(world) as admin:
        form = create_form(
            admin,
            name="  New starter  ",
            description="Onboard someone",
            workflow_id="add",  # a name: the id is stored
            form_schema=FULL_SCHEMA,
            access_level="authenticated",
        )
        assert form["name"] == "New starter" and form["workflow_id"] == ADD_ID
        assert form["organization_id"] == world.org_a and form["is_active"] is True
        assert form["created_by"] == world.admin_id and form["created_at"].endswith("+00:00")
        stored = form["form_schema"]["fields"]
        assert [f["name"] for f in stored] == [f["name"] for f in FULL_SCHEMA["fields"]]
        # Normalised: every key present, given values kept.
        assert stored[1]["validation"] == {"min": 1, "max": 10, "pattern": None, "message": "Pick 1 to 10"}
        assert stored[2]["label"] is None and stored[2]["required"] is False and stored[2]["default"] == 2
        assert stored[5]["data_provider_inputs"] == {
            "size": {"value": None, "field": "size"},
            "limit": {"value": 5, "field": None},
        }
        assert admin.get(f"/api/forms/{form['id']}").json() == form

        changed = admin.patch(
            f"/api/forms/{form['id']}", json={"name": "Starter", "description": None, "is_active": False}
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert body["name"] == "Starter" and body["description"] is None and body["is_active"] is False
        assert body["updated_at"] > form["updated_at"] and body["created_at"] == form["created_at"]
        assert body["form_schema"] == form["form_schema"]
        by_id = admin.patch(f"/api/forms/{form['id']}", json={"workflow_id": stable_workflow_id("workflow", "typed")})
        assert by_id.json()["workflow_id"] == stable_workflow_id("workflow", "typed")
        assert admin.patch(f"/api/forms/{form['id']}", json={"form_schema": None}).json()["form_schema"] is None

        assert admin.delete(f"/api/forms/{form['id']}").status_code == 204
        assert admin.get(f"/api/forms/{form['id']}").status_code == 404
        assert admin.delete(f"/api/forms/{form['id']}").status_code == 404
        assert admin.patch("/api/forms/no-such-form", json={"name": "x"}).status_code == 404


def test_deleting_or_moving_a_form_drops_role_assignments_that_no_longer_apply(world: World) -> None:
    with _admin(world) as admin:
        role = admin.post("/api/roles", json={"name": "Form movers"}).json()
        moved = create_form(admin, name="Moves to B")
        kept = create_form(admin, name="Goes global")
        gone = create_form(admin, name="Deleted")
        ids = sorted([moved["id"], kept["id"], gone["id"]])
        assert admin.post(f"/api/roles/{role['id']}/forms", json={"form_ids": ids}).status_code == 204
        assert admin.get(f"/api/forms/{moved['id']}/roles").json() == [role["id"]]

        assert admin.patch(f"/api/forms/{moved['id']}", json={"organization_id": world.org_b}).status_code == 200
        assert admin.patch(f"/api/forms/{kept['id']}", json={"organization_id": None}).status_code == 200
        assert admin.delete(f"/api/forms/{gone['id']}").status_code == 204
        # A role of Org A still grants the now-global form, but not Org B's form nor a deleted one.
        assert admin.get(f"/api/roles/{role['id']}/forms").json() == [kept["id"]]
        assert admin.get(f"/api/forms/{moved['id']}/roles").json() == []

        # Roles assigned from the form side must belong to the form's organization.
        bad = admin.put(f"/api/forms/{moved['id']}/roles", json={"role_ids": [role["id"]]})
        assert _errors(bad)[0]["field"] == "role_ids"
        assert admin.put(f"/api/forms/{kept['id']}/roles", json={"role_ids": []}).json() == []
        assert admin.get(f"/api/roles/{role['id']}/forms").json() == []


def test_invalid_forms_are_refused_naming_the_field_and_nothing_is_written(world: World) -> None:
    def schema(*fields: dict[str, Any]) -> dict[str, Any]:
        return {"fields": list(fields)}

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"workflow_id": "no-such-workflow"}, "workflow_id", "no workflow"),
        ({"workflow_id": "colours"}, "workflow_id", "no workflow"),  # a data provider is not a workflow
        ({"workflow_id": None}, "workflow_id", "id or name"),
        ({"name": "  "}, "name", "non-empty"),
        ({"access_level": "everyone"}, "access_level", "role_based"),
        ({"organization_id": "no-such-org"}, "organization_id", "no organization"),
        ({"is_active": "yes"}, "is_active", "true or false"),
        ({"colour": "red"}, "colour", "cannot be updated"),
        ({"form_schema": ["a"]}, "form_schema", "must be an object"),
        ({"form_schema": {"fields": [], "title": "x"}}, "form_schema.title", "unknown key"),
        ({"form_schema": schema({"name": "a", "type": "slider"})}, "form_schema.fields[0].type", "'text'"),
        ({"form_schema": schema({"name": "first name", "type": "text"})}, "form_schema.fields[0].name", "pattern"),
        ({"form_schema": schema({"type": "text"})}, "form_schema.fields[0].name", "required"),
        (
            {"form_schema": schema({"name": "a", "type": "text", "required": "yes"})},
            "form_schema.fields[0].required",
            "field 'a'",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "number"}, {"name": "pick", "type": "select"})},
            "form_schema.fields[1].options",
            "field 'pick': select fields need options or a data_provider",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "text", "options": [{"label": "x", "value": "x"}]})},
            "form_schema.fields[0].options",
            "only select, radio and multi_select",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "text", "validation": {"pattern": "(unclosed"}})},
            "form_schema.fields[0].validation.pattern",
            "not a valid regular expression",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "number", "validation": {"min": 5, "max": 1}})},
            "form_schema.fields[0].validation.min",
            "greater than",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "number", "default": "three"})},
            "form_schema.fields[0].default",
            "must be a number",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "text", "default": "xx", "validation": {"pattern": "y+"}})},
            "form_schema.fields[0].default",
            "pattern",
        ),
        (
            {
                "form_schema": schema(
                    {"name": "a", "type": "radio", "options": [{"label": "One", "value": 1}], "default": 2}
                )
            },
            "form_schema.fields[0].default",
            "one of the option values",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "date", "default": "05/01/2026"})},
            "form_schema.fields[0].default",
            "YYYY-MM-DD",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "text"}, {"name": "a", "type": "number"})},
            "form_schema.fields[1].name",
            "duplicate name",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "text", "visible_when": {"field": "b"}})},
            "form_schema.fields[0].visible_when.field",
            "no field named 'b'",
        ),
        (
            {"form_schema": schema({"name": "a", "type": "select", "data_provider": "no_such_provider"})},
            "form_schema.fields[0].data_provider",
            "no data provider",
        ),
        (
            {
                "form_schema": schema(
                    {"name": "a", "type": "select", "data_provider": "colours", "data_provider_inputs": {"q": {}}}
                )
            },
            "form_schema.fields[0].data_provider_inputs.q",
            "either a fixed value or the name of another field",
        ),
        ({"form_schema": schema({"name": "a", "type": "markdown"})}, "form_schema.fields[0].content", "need content"),
        (
            {"form_schema": schema({"name": "a", "type": "text", "multiple": True})},
            "form_schema.fields[0].multiple",
            "only file fields",
        ),
    ]
    with _admin(world) as admin:
        before = len(admin.get("/api/forms").json())
        target = create_form(admin, name="Stays as it is", form_schema={"fields": [{"name": "a", "type": "number"}]})
        for patch_body, field, text in cases:
            body = {"name": "Broken", "workflow_id": "add", **patch_body}
            errors = _errors(admin.post("/api/forms", json=body))
            assert errors[0]["field"] == field, (patch_body, errors)
            assert text in errors[0]["message"], (patch_body, errors)
            update = admin.patch(f"/api/forms/{target['id']}", json={"name": "Changed", **patch_body})
            assert _errors(update)[0]["field"] == field, (patch_body, update.text)
        assert len(admin.get("/api/forms").json()) == before + 1
        assert admin.get(f"/api/forms/{target['id']}").json() == target  # no update half-applied
        missing = admin.post("/api/forms", json={"workflow_id": "add"})
        assert _errors(missing)[0] == {"field": "name", "message": "is required"}
        assert _errors(admin.post("/api/forms", json={"name": "No workflow"}))[0]["field"] == "workflow_id"
        # Every problem is reported at once.
        several = admin.post(
            "/api/forms",
            json={
                "name": "Two problems",
                "workflow_id": "add",
                "form_schema": schema({"name": "x", "type": "select"}, {"name": "y", "type": "checkbox", "default": 1}),
            },
        )
        assert [e["field"] for e in _errors(several)] == [
            "form_schema.fields[0].options",
            "form_schema.fields[1].default",
        ]


def test_users_cannot_write_forms_and_the_sdk_api_only_reads(world: World) -> None:
    with _admin(world) as admin:
        form = create_form(admin, name="Read only for users", access_level="authenticated")
    with world.server.client(world.alice_key) as alice:
        assert alice.get(f"/api/forms/{form['id']}").status_code == 200  # she may use it ...
        attempts = [
            alice.post("/api/forms", json={"name": "Mine", "workflow_id": "add"}),
            alice.patch(f"/api/forms/{form['id']}", json={"name": "Hijacked"}),
            alice.delete(f"/api/forms/{form['id']}"),
            alice.get(f"/api/forms/{form['id']}/roles"),
            alice.put(f"/api/forms/{form['id']}/roles", json={"role_ids": []}),
            alice.patch("/api/forms/no-such-form", json={"name": "x"}),  # 403 too: no existence probe
        ]
        assert [r.status_code for r in attempts] == [403] * len(attempts)
        assert "platform admins" in attempts[0].json()["detail"]
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin:
        assert admin.get(f"/api/forms/{form['id']}").json()["name"] == "Read only for users"
        # Through the SDK API even an admin only reads (bifrost.forms has no writes).
        assert admin.get(f"/api/sdk/v1/forms/{form['id']}").status_code == 200
        sdk_writes = [
            admin.post("/api/sdk/v1/forms", json={"name": "Via SDK", "workflow_id": "add"}),
            admin.patch(f"/api/sdk/v1/forms/{form['id']}", json={"name": "Via SDK"}),
            admin.delete(f"/api/sdk/v1/forms/{form['id']}"),
        ]
        assert [r.status_code for r in sdk_writes] == [403, 403, 403]
        assert admin.get(f"/api/forms/{form['id']}").json()["name"] == "Read only for users"
    with httpx.Client(base_url=world.server.url) as anonymous:
        assert anonymous.get("/api/forms").status_code == 401
        assert anonymous.get(f"/api/forms/{form['id']}").status_code == 401


def test_default_schema_generated_from_a_workflow(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        add = alice.get("/api/forms/default-schema", params={"workflow": "add"})
        assert add.status_code == 200, add.text
        fields = {f["name"]: f for f in add.json()["fields"]}
        assert list(fields) == ["a", "b"]
        assert fields["a"]["type"] == "number" and fields["a"]["required"] is True
        assert fields["a"]["label"] == "A" and fields["a"]["help_text"] == "First."
        assert fields["b"]["default"] == 2 and fields["b"]["required"] is False
        typed = {f["name"]: f for f in alice.get("/api/forms/default-schema?workflow=typed").json()["fields"]}
        assert typed["day"]["type"] == "date" and typed["day"]["required"] is True
        assert typed["point"]["type"] == "textarea" and "JSON" in typed["point"]["help_text"]
        assert typed["tags"]["type"] == "textarea" and typed["tags"]["required"] is False
        assert alice.get("/api/forms/default-schema?workflow=nope").status_code == 404
        assert alice.get("/api/forms/default-schema").status_code == 400  # the workflow parameter is required
    with _admin(world) as admin:
        # A generated schema is a valid starting point for the builder.
        form = create_form(admin, name="From add", form_schema=add.json())
        assert form["form_schema"] == add.json()
