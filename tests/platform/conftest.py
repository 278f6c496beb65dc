"""A live platform with two organizations, a user in each and a platform admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings


@dataclass
class World:
    """Handles on the seeded platform."""

    server: LiveServer
    admin_key: str
    alice_key: str  # user of Org A
    bob_key: str  # user of Org B
    org_a: str
    org_b: str
    alice_id: str
    bob_id: str
    admin_id: str


async def seed(platform) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Create the admin, two organizations, one user in each, and an API key per user."""
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService

    async with transaction(platform.sessions) as session:
        users = UserService(session)
        admin = await users.create(None, "admin@test.io", "Admin", is_superuser=True, password="admin-password")
        auth = AuthService(session)
        admin_actor = await auth.actor_for_user(admin.id)
        orgs = OrganizationService(session)
        org_a = await orgs.create(admin_actor, "Org A", domain="a.example")
        org_b = await orgs.create(admin_actor, "Org B", domain="b.example")
        alice = await users.create(admin_actor, "alice@a.example", "Alice", org_id=org_a.id, password="alice-password")
        bob = await users.create(admin_actor, "bob@b.example", "Bob", org_id=org_b.id, password="bob-password")
        keys = ApiKeyService(session)
        _, admin_key = await keys.create(admin_actor, "admin key")
        _, alice_key = await keys.create(await auth.actor_for_user(alice.id), "alice key")
        _, bob_key = await keys.create(await auth.actor_for_user(bob.id), "bob key")
    return {
        "admin_key": admin_key,
        "alice_key": alice_key,
        "bob_key": bob_key,
        "org_a": org_a.id,
        "org_b": org_b.id,
        "alice_id": alice.id,
        "bob_id": bob.id,
        "admin_id": admin.id,
    }


def start_world(tmp: Path, database_url: str | None = None) -> World:
    """Start a live server on a fresh database and seed it."""
    server = LiveServer(make_settings(tmp, database_url)).start()
    data = server.call(lambda: seed(server.platform))
    return World(server=server, **data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One seeded live server (SQLite) shared by a test module."""
    w = start_world(tmp_path_factory.mktemp("world"))
    try:
        yield w
    finally:
        w.server.stop()


@contextmanager
def browser_session(
    world: World, email: str = "admin@test.io", password: str = "admin-password"
) -> Iterator[httpx.Client]:
    """An HTTP client logged in with a session cookie, sending the CSRF header on every request."""
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        client.get("/login")  # sets the csrftoken cookie
        response = client.post("/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        yield client
