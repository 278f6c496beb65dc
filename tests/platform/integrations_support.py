"""Helpers for the integration tests: a seeded live server per database, a fake provider, connect helpers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import POSTGRES_URL, LiveServer, create_postgres_database, drop_postgres_database, make_settings
from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World, browser_session, seed

# The background job is driven by the tests (run_once), so it never refreshes behind their back.
SETTINGS = {
    "integration_refresh_interval_seconds": 3600.0,
    "integration_refresh_leeway_seconds": 300.0,
    "integration_refresh_ahead_seconds": 900.0,
    "workers": 3,
}


def start_integration_world(tmp: Path, database_url: str | None = None) -> World:
    """A seeded live server with the integration settings above."""
    server = LiveServer(make_settings(tmp, database_url, **SETTINGS)).start()
    data = server.call(lambda: seed(server.platform))
    return World(server=server, **data)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def iworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server per database (Postgres skipped without BIFROST_TEST_POSTGRES_URL)."""
    tmp = tmp_path_factory.mktemp(f"integrations-{request.param}")
    url = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    world = start_integration_world(tmp, url)
    try:
        yield world
    finally:
        world.server.stop()
        if url:
            drop_postgres_database(url)


@pytest.fixture
def provider() -> Iterator[FakeOAuthProvider]:
    """A fresh fake OAuth provider on 127.0.0.1."""
    with FakeOAuthProvider() as fake:
        yield fake


_counter = iter(range(1, 1_000_000))


def unique(prefix: str) -> str:
    """A name no other test of the module uses (worlds are shared by a module)."""
    return f"{prefix}_{next(_counter)}_{int(time.time() * 1000) % 100000}"


def sha(text: str) -> str:
    """SHA-256 hex of ``text`` (workflows report digests: the values themselves are redacted)."""
    return hashlib.sha256(text.encode()).hexdigest()


SCHEMA = [
    {"key": "api_base", "type": "string", "description": "Where the API lives"},
    {"key": "region", "type": "string"},
    {"key": "page_size", "type": "int"},
    {"key": "verbose", "type": "bool"},
    {"key": "api_secret", "type": "string", "secret": True},
]


def define(
    world: World, provider: FakeOAuthProvider, flow: str = "authorization_code", tenant_urls: bool = True, **extra: Any
) -> dict[str, Any]:
    """Define an integration on the fake provider (``{entity_id}`` in its URLs) and return its view."""
    base = f"{provider.url}/{{entity_id}}" if tenant_urls else provider.url
    body: dict[str, Any] = {
        "name": unique("Fake"),
        "description": "The fake provider",
        "oauth_flow": flow,
        "authorization_url": f"{base}/authorize" if flow == "authorization_code" else None,
        "token_url": f"{base}/token",
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "scopes": ["offline_access", "read"],
        "config_schema": SCHEMA,
        "config_defaults": {
            "api_base": provider.url,
            "region": "eu",
            "page_size": 50,
            "api_secret": "default-secret-1",
        },
        **extra,
    }
    with world.server.client(world.admin_key) as admin:
        response = admin.post("/api/integrations", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


def map_org(world: World, name: str, org: str, **body: Any) -> dict[str, Any]:
    """Create or change an organization's mapping through the API."""
    with world.server.client(world.admin_key) as admin:
        response = admin.put(f"/api/integrations/{name}/mappings/{org}", json=body)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def mapping(world: World, name: str, org: str) -> dict[str, Any]:
    """The mapping view (with the connection status) through the API."""
    with world.server.client(world.admin_key) as admin:
        response = admin.get(f"/api/integrations/{name}/mappings/{org}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def authorize(world: World, name: str, org: str) -> str:
    """Start the code flow as the admin and follow the provider's redirect: the callback URL to open."""
    with world.server.client(world.admin_key) as admin:
        started = admin.post(f"/api/integrations/{name}/mappings/{org}/connect")
        assert started.status_code == 200, started.text
    authorize_url = started.json()["authorize_url"]
    with httpx.Client(timeout=30) as client:
        answer = client.get(authorize_url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(world.server.url + "/integrations/oauth/callback?")
    return location


def finish(world: World, callback: str) -> httpx.Response:
    """Open the callback URL in the admin's logged-in browser session (no redirects followed)."""
    with browser_session(world) as browser:
        return browser.get(callback.removeprefix(world.server.url), follow_redirects=False)


def connect(world: World, name: str, org: str) -> dict[str, Any]:
    """The full code flow; returns the connection's status."""
    response = finish(world, authorize(world, name, org))
    assert response.status_code == 303, response.text
    connection = mapping(world, name, org)["connection"]
    assert connection and connection["status"] == "connected"
    return connection  # type: ignore[no-any-return]


def callback_params(callback: str) -> dict[str, str]:
    """The query parameters of a callback URL."""
    return {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}


def run(world: World, api_key: str, workflow: str, /, **params: Any) -> dict[str, Any]:
    """Run ``workflow`` and wait for its end; returns the execution."""
    with world.server.client(api_key) as client:
        response = client.post(f"/api/workflows/{workflow}/execute?wait=true", json={"params": params})
        assert response.status_code == 200, response.text
        execution = response.json()
    assert execution["status"] == "Completed", execution
    return execution  # type: ignore[no-any-return]


def read_connection(world: World, integration_id: str, org_id: str) -> dict[str, Any]:
    """The raw connection row (encrypted tokens) straight from the database."""

    async def read() -> dict[str, Any]:
        from sqlalchemy import text

        from app.db import transaction

        async with transaction(world.server.platform.sessions) as session:
            row = (
                (
                    await session.execute(
                        text(
                            "SELECT c.* FROM integration_connection c JOIN integration_mapping m ON m.id = c.mapping_id "
                            "WHERE m.integration_id = :i AND m.organization_id = :o"
                        ),
                        {"i": integration_id, "o": org_id},
                    )
                )
                .mappings()
                .first()
            )
            return dict(row) if row else {}

    return world.server.call(read)  # type: ignore[no-any-return]
