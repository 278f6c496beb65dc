"""Alembic migrations build exactly the schema the models describe, on each database."""

from __future__ import annotations

from alembic import command

from app.db import alembic_config, upgrade_database


def test_migrations_match_the_models(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)  # idempotent
    # Raises when a model changed without a migration (autogenerate finds operations).
    command.check(alembic_config(database_url))
