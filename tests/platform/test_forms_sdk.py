"""``bifrost.forms`` and ``bifrost.roles`` form assignments, called as an author would: URL + API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import bifrost
from bifrost import forms, roles
from bifrost.errors import NotFoundError, PermissionDeniedError, ValidationError
from tests.platform.conftest import World
from tests.platform.forms_support import create_form


@pytest.fixture
def made(world: World) -> dict[str, dict]:
    """Forms of Org A (by role, authenticated), a global one by role, and one of Org B, made over HTTP."""
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin:
        schema = {"fields": [{"name": "a", "type": "number", "required": True, "label": "First"}]}
        return {
            "a_role": create_form(admin, name="SDK by role", access_level="role_based", form_schema=schema),
            "a_auth": create_form(admin, name="SDK authenticated", access_level="authenticated"),
            "global_role": create_form(admin, name="SDK global by role", organization_id=None),
            "b_auth": create_form(admin, name="SDK Org B", access_level="authenticated", organization_id=world.org_b),
        }


@pytest.fixture
def configured() -> Iterator[None]:
    yield
    bifrost.configure(None)


async def test_roles_assign_forms_and_forms_follow_the_assignment(
    world: World, made: dict[str, dict], configured: None
) -> None:
    bifrost.configure(world.server.url, world.alice_key)
    mine = {f.id for f in await forms.list()}
    assert made["a_auth"]["id"] in mine and made["a_role"]["id"] not in mine and made["b_auth"]["id"] not in mine
    with pytest.raises(NotFoundError):
        await forms.get(made["a_role"]["id"])
    with pytest.raises(NotFoundError):
        await forms.get(made["b_auth"]["id"])  # another organization's form: not found, not forbidden
    with pytest.raises(PermissionDeniedError):
        await roles.list_forms("any-role")  # roles are for admins

    bifrost.configure(world.server.url, world.admin_key, org="Org A")
    role = await roles.create("SDK form users")
    await roles.assign_forms(role.id, [made["a_role"]["id"], made["global_role"]["id"]])
    await roles.assign_forms(role.id, [made["a_role"]["id"]])  # idempotent
    assert await roles.list_forms(role.id) == sorted([made["a_role"]["id"], made["global_role"]["id"]])
    with pytest.raises(ValidationError) as refused:
        await roles.assign_forms(role.id, [made["b_auth"]["id"], made["a_auth"]["id"]])
    assert refused.value.errors[0]["field"] == "form_ids" and made["b_auth"]["id"] in str(refused.value)
    assert made["a_auth"]["id"] not in await roles.list_forms(role.id)  # nothing half-written
    with pytest.raises(ValidationError):
        await roles.assign_forms(role.id, ["no-such-form"])
    await roles.assign_users(role.id, [world.alice_id])

    bifrost.configure(world.server.url, world.alice_key)
    mine = {f.id for f in await forms.list()}
    assert {made["a_role"]["id"], made["global_role"]["id"], made["a_auth"]["id"]} <= mine
    form = await forms.get(made["a_role"]["id"])
    assert isinstance(form, bifrost.FormPublic)
    assert form.name == "SDK by role" and form.access_level == "role_based" and form.is_active
    assert form.organization_id == world.org_a and form.workflow_id == made["a_role"]["workflow_id"]
    assert form.form_schema is not None
    assert form.form_schema["fields"][0]["label"] == "First" and form.form_schema["fields"][0]["required"] is True

    # Bob (Org B) holds no Org A role: the global role-based form stays hidden from him.
    bifrost.configure(world.server.url, world.bob_key)
    bobs = {f.id for f in await forms.list()}
    assert made["b_auth"]["id"] in bobs and made["global_role"]["id"] not in bobs
    with pytest.raises(NotFoundError):
        await forms.get(made["global_role"]["id"])


async def test_admins_see_every_form_through_the_sdk(world: World, made: dict[str, dict], configured: None) -> None:
    bifrost.configure(world.server.url, world.admin_key)
    listed = {f.id for f in await forms.list()}
    assert {f["id"] for f in made.values()} <= listed
    assert (await forms.get(made["b_auth"]["id"])).organization_id == world.org_b
    with pytest.raises(NotFoundError):
        await forms.get("no-such-form")
