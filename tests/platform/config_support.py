"""Helpers for the config tests: a seeded live server on SQLite and on Postgres, and run helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database
from tests.platform.conftest import World, start_world


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server per database (Postgres skipped without BIFROST_TEST_POSTGRES_URL)."""
    tmp = tmp_path_factory.mktemp(f"config-{request.param}")
    url = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    world = start_world(tmp, url)
    try:
        yield world
    finally:
        world.server.stop()
        if url:
            drop_postgres_database(url)


def run(
    world: World, api_key: str, workflow: str, /, *, run_in_org: str | None = None, **params: Any
) -> dict[str, Any]:
    """Run ``workflow`` with ``api_key`` (in ``run_in_org``, admins) and wait for its end; returns the execution."""
    body: dict[str, Any] = {"params": params}
    if run_in_org:
        body["org"] = run_in_org
    with world.server.client(api_key) as client:
        response = client.post(f"/api/workflows/{workflow}/execute?wait=true", json=body)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def set_value(world: World, api_key: str, name: str, value: Any) -> dict[str, Any]:
    """Run the ``config_set`` workflow (value passed as JSON text) and return its result."""
    execution = run(world, api_key, "config_set", key=name, value_json=json.dumps(value))
    assert execution["status"] == "Completed", execution
    return execution["result"]  # type: ignore[no-any-return]


def raw_value(world: World, name: str, org_id: str | None) -> str:
    """The stored text of a config row, read straight from the database."""

    async def read() -> str:
        from sqlalchemy import text

        from app.db import transaction

        async with transaction(world.server.platform.sessions) as session:
            org_clause = "organization_id IS NULL" if org_id is None else "organization_id = :org"
            row = (
                await session.execute(
                    text(f"SELECT value FROM config_entry WHERE key = :key AND {org_clause}"),
                    {"key": name, "org": org_id},
                )
            ).one()
            return str(row[0])

    return world.server.call(read)  # type: ignore[no-any-return]


def key_file(world: World) -> Path:
    """The server's secret key file."""
    return Path(world.server.settings.home) / "secret.key"
