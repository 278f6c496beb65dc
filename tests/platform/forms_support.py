"""Helpers shared by the forms tests: users with keys, forms created over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from tests.platform.conftest import World


def add_user(world: World, email: str, org_id: str) -> tuple[str, str]:
    """Create a user of ``org_id`` over HTTP (as admin) and an API key for them; returns ``(user_id, key)``."""
    with world.server.client(world.admin_key) as admin:
        created = admin.post("/api/users", json={"email": email, "name": email.split("@")[0], "org_id": org_id})
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]

    async def make_key() -> str:
        from app.db import transaction
        from app.services.identity.auth import ApiKeyService, AuthService

        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(user_id)
            _, key = await ApiKeyService(session).create(actor, f"{email} key")
        return key

    return user_id, world.server.call(make_key)


def create_form(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    """POST a form (workflow ``add`` unless given) and return it, asserting 201."""
    body.setdefault("workflow_id", "add")
    response = admin.post("/api/forms", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def visible_ids(client: httpx.Client, among: set[str], prefix: str = "/api") -> set[str]:
    """Ids of the listed forms that are in ``among`` (other tests of the module add their own forms)."""
    response = client.get(f"{prefix}/forms")
    assert response.status_code == 200, response.text
    return {f["id"] for f in response.json()} & among
