"""Who sees which form: each access level x (admin, org users with and without the role, another org).

Runs on SQLite and on Postgres (the visibility rules are one SQL query per call).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.conftest import World, start_world
from tests.platform.forms_support import add_user, create_form, visible_ids


@pytest.fixture
def db_world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """A seeded live server on a fresh SQLite file, then on a fresh Postgres database."""
    world = start_world(tmp_path, database_url)
    try:
        yield world
    finally:
        world.server.stop()


def test_visibility_by_access_level_organization_role_and_state(db_world: World) -> None:
    world = db_world
    carol_id, carol_key = add_user(world, "carol@a.example", world.org_a)  # Org A, without the role
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin_a:
        role = admin_a.post("/api/roles", json={"name": "Service desk"}).json()
        assert admin_a.post(f"/api/roles/{role['id']}/users", json={"user_ids": [world.alice_id]}).status_code == 204
        forms = {
            "a_public": create_form(admin_a, name="A public", access_level="public"),
            "a_auth": create_form(admin_a, name="A authenticated", access_level="authenticated"),
            "a_role": create_form(admin_a, name="A by role", access_level="role_based"),
            "a_role_unassigned": create_form(admin_a, name="A by role, no role", access_level="role_based"),
            "a_inactive": create_form(admin_a, name="A inactive", access_level="authenticated", is_active=False),
            "global_auth": create_form(
                admin_a, name="Global authenticated", access_level="authenticated", organization_id=None
            ),
            "global_role": create_form(admin_a, name="Global by role", access_level="role_based", organization_id=None),
            "b_auth": create_form(
                admin_a, name="B authenticated", access_level="authenticated", organization_id=world.org_b
            ),
            "b_public": create_form(admin_a, name="B public", access_level="public", organization_id=world.org_b),
        }
        # Omitted organization_id = the organization the admin acts in; null = global.
        assert forms["a_public"]["organization_id"] == world.org_a
        assert forms["global_auth"]["organization_id"] is None
        assigned = admin_a.post(
            f"/api/roles/{role['id']}/forms",
            json={"form_ids": [forms["a_role"]["id"], forms["global_role"]["id"]]},
        )
        assert assigned.status_code == 204
    ids = {key: form["id"] for key, form in forms.items()}
    everything = set(ids.values())

    def expect(*keys: str) -> set[str]:
        return {ids[k] for k in keys}

    expected = {
        world.alice_key: expect("a_public", "a_auth", "a_role", "global_auth", "global_role"),
        carol_key: expect("a_public", "a_auth", "global_auth"),
        world.bob_key: expect("global_auth", "b_auth", "b_public"),
        world.admin_key: everything,
    }
    for key, visible in expected.items():
        for prefix in ("/api", "/api/sdk/v1"):
            with world.server.client(key) as client:
                assert visible_ids(client, everything, prefix) == visible, (key, prefix)
                for form_id in everything:
                    status = client.get(f"{prefix}/forms/{form_id}").status_code
                    assert status == (200 if form_id in visible else 404), (key, prefix, form_id)
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org B"}) as admin_b:
        # Acting in an organization, an admin lists that organization's forms and the global ones ...
        assert visible_ids(admin_b, everything) == expect("global_auth", "global_role", "b_auth", "b_public")
        # ... and can still open any form by id.
        assert admin_b.get(f"/api/forms/{ids['a_inactive']}").json()["is_active"] is False

    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin_a:
        # A deactivated role grants nothing; reactivated, it grants again.
        assert admin_a.patch(f"/api/roles/{role['id']}", json={"is_active": False}).status_code == 200
        with world.server.client(world.alice_key) as alice:
            assert visible_ids(alice, everything) == expect("a_public", "a_auth", "global_auth")
            assert alice.get(f"/api/forms/{ids['a_role']}").status_code == 404
        assert admin_a.patch(f"/api/roles/{role['id']}", json={"is_active": True}).status_code == 200
        # Switching a form's level changes who sees it at once.
        assert admin_a.patch(f"/api/forms/{ids['a_auth']}", json={"access_level": "role_based"}).status_code == 200
        assert admin_a.patch(f"/api/forms/{ids['a_inactive']}", json={"is_active": True}).status_code == 200
    with world.server.client(carol_key) as carol:
        assert visible_ids(carol, everything) == expect("a_public", "a_inactive", "global_auth")
    with world.server.client(world.alice_key) as alice:
        assert visible_ids(alice, everything) == expect(
            "a_public", "a_role", "a_inactive", "global_auth", "global_role"
        )
    # Carol given the role through the form side (PUT /forms/{id}/roles) now sees that form.
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin_a:
        assert admin_a.post(f"/api/roles/{role['id']}/users", json={"user_ids": [carol_id]}).status_code == 204
        assert admin_a.put(f"/api/forms/{ids['a_auth']}/roles", json={"role_ids": [role["id"]]}).json() == [role["id"]]
    with world.server.client(carol_key) as carol:
        assert ids["a_auth"] in visible_ids(carol, everything)
        assert carol.get(f"/api/forms/{ids['a_role']}").status_code == 200


def test_public_forms_without_a_user_and_who_may_run_a_form(db_world: World) -> None:
    """``get_public`` (anonymous form pages) and ``can_run`` (running through a form) on the live server."""
    world = db_world
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": "Org A"}) as admin_a:
        public = create_form(admin_a, name="Public", access_level="public")
        inactive_public = create_form(admin_a, name="Public, inactive", access_level="public", is_active=False)
        authenticated = create_form(admin_a, name="Signed in", access_level="authenticated")
        by_role = create_form(admin_a, name="By role", access_level="role_based")

    async def check() -> dict[str, object]:
        from app.db import transaction
        from app.services.errors import NotFoundError
        from app.services.forms.service import FormService
        from app.services.identity.auth import AuthService

        async with transaction(world.server.platform.sessions) as session:
            forms = FormService(session)
            found = (await forms.get_public(public["id"])).name
            refused = []
            for form_id in (inactive_public["id"], authenticated["id"], by_role["id"], "no-such-form"):
                try:
                    await forms.get_public(form_id)
                except NotFoundError:
                    refused.append(form_id)
            auth = AuthService(session)
            alice, bob, admin = (
                await auth.actor_for_user(world.alice_id),
                await auth.actor_for_user(world.bob_id),
                await auth.actor_for_user(world.admin_id),
            )
            rows = {key: await forms.get(admin, f["id"]) for key, f in (("auth", authenticated), ("role", by_role))}
            runs = {
                "alice_auth": await forms.can_run(alice, rows["auth"]),
                "alice_role": await forms.can_run(alice, rows["role"]),
                "bob_auth": await forms.can_run(bob, rows["auth"]),
                "admin_role": await forms.can_run(admin, rows["role"]),
            }
        return {"found": found, "refused": refused, "runs": runs}

    result = world.server.call(check)
    assert result["found"] == "Public"
    assert result["refused"] == [inactive_public["id"], authenticated["id"], by_role["id"], "no-such-form"]
    assert result["runs"] == {"alice_auth": True, "alice_role": False, "bob_auth": False, "admin_role": True}
