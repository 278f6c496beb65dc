"""Give a user an authoring role (``can_author``) over HTTP, as a platform admin would."""

from __future__ import annotations

from tests.platform.conftest import World


def make_author(world: World, user_id: str, org_id: str, role_name: str = "Authors") -> str:
    """Create (or reuse) an authoring role in ``org_id``, assign ``user_id`` to it; return the role id."""
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": org_id}) as admin:
        roles = {r["name"]: r for r in admin.get("/api/roles").json()}
        role = roles.get(role_name)
        if role is None:
            created = admin.post("/api/roles", json={"name": role_name, "can_author": True})
            assert created.status_code == 201, created.text
            role = created.json()
        granted = admin.patch(f"/api/roles/{role['id']}", json={"can_author": True})
        assert granted.status_code == 200 and granted.json()["can_author"] is True, granted.text
        assigned = admin.post(f"/api/roles/{role['id']}/users", json={"user_ids": [user_id]})
        assert assigned.status_code == 204, assigned.text
    return str(role["id"])
