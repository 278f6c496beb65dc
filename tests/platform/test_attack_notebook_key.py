"""A leaked notebook key (issue 20: "the key it creates is scoped to notebooks") reaches only what a
notebook needs, even when its author is a platform admin."""

from __future__ import annotations

import pytest

from tests.platform.conftest import World

ALLOWED = [
    ("GET", "/api/workflows", None),
    ("GET", "/api/workflows/add", None),
    ("POST", "/api/workflows/add/execute?wait=true", {"params": {"a": 1, "b": 2}}),
    ("GET", "/api/executions?limit=5", None),
    ("GET", "/api/auth/me", None),
    ("GET", "/api/sdk/v1/organizations", None),
]
REFUSED = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"email": "x@a.example", "name": "X"}),
    ("GET", "/api/roles", None),
    ("POST", "/api/organizations", {"name": "Evil Corp"}),
    ("GET", "/api/api-keys", None),
    ("PUT", "/api/workflows/add/access", {"access": "admins"}),
    ("GET", "/api/audit", None),
    ("GET", "/api/schedules", None),
    ("POST", "/api/workspace/sync", None),
    ("GET", "/api/ai/settings", None),
]


@pytest.fixture(scope="module")
def notebook_key(world: World) -> str:
    """A notebook-scoped key of the platform admin, made as ``bifrost notebook`` makes one."""
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService

    async def create() -> str:
        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(world.admin_id)
            _, key = await ApiKeyService(session).create(actor, "bifrost notebook", scope="notebook")
            return key

    return world.server.call(create)


def test_a_notebook_key_runs_workflows_and_reads_executions(world: World, notebook_key: str) -> None:
    with world.server.client(notebook_key) as client:
        for method, path, body in ALLOWED:
            response = client.request(method, path, json=body)
            assert response.status_code < 400, (method, path, response.text[:200])
        assert client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1, "b": 2}}).json()[
            "result"
        ] == {"sum": 3}


def test_a_leaked_notebook_key_of_an_admin_cannot_administer_the_platform(world: World, notebook_key: str) -> None:
    attempts = 0
    with world.server.client(notebook_key) as client:
        for method, path, body in REFUSED:
            response = client.request(method, path, json=body)
            attempts += 1
            assert response.status_code == 403, (method, path, response.status_code, response.text[:200])
            assert "scoped to notebooks" in response.json()["detail"]
    print(f"{attempts} admin requests with a notebook key refused")
    with world.server.client(world.admin_key) as admin:  # an unscoped key of the same admin still may
        assert admin.get("/api/users").status_code == 200


def test_scope_is_validated_and_shown(world: World, notebook_key: str) -> None:
    from app.db import transaction
    from app.services.errors import InvalidInputError
    from app.services.identity.auth import ApiKeyService, AuthService

    async def bad_scope() -> None:
        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(world.admin_id)
            await ApiKeyService(session).create(actor, "x", scope="everything")

    with pytest.raises(InvalidInputError, match="scope"):
        world.server.call(bad_scope)
    with world.server.client(world.admin_key) as admin:
        scopes = {k["name"]: k["scope"] for k in admin.get("/api/api-keys").json()}
    assert scopes["bifrost notebook"] == "notebook" and scopes["admin key"] is None
