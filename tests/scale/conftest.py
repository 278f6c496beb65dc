"""Fixtures of the queue's database-level tests: a fresh Postgres database, migrated, with the queue's schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.db import create_engine, session_factory, upgrade_database_async
from app.engine.queue_schema import ensure_queue_schema
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh Postgres database (dropped after the test); the caller's module skips without Postgres."""
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
async def sessions(database: str) -> AsyncIterator[Any]:
    """A session factory on :func:`database`, migrated and with procrastinate's schema and the trigger."""
    await upgrade_database_async(database)
    await ensure_queue_schema(database)
    engine = create_engine(database)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
