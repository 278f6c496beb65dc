"""Alembic migrations build exactly the schema the models describe, on each database."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import inspect

from app.db import alembic_config, create_engine, upgrade_database

# The migrations run here on an empty database, not on a copy of the tests' migrated template.
pytestmark = pytest.mark.empty_database


def _tables(url: str) -> list[str]:
    async def read() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_migrations_match_the_models(database_url: str) -> None:
    assert _tables(database_url) == []  # every migration runs, from the first
    upgrade_database(database_url)
    upgrade_database(database_url)  # idempotent
    # Raises when a model changed without a migration (autogenerate finds operations).
    command.check(alembic_config(database_url))
