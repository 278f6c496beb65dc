"""Alembic environment: runs migrations with the app's async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table)
from app.db import create_engine

target_metadata = SQLModel.metadata


def _include(_obj: object, name: str | None, type_: str, reflected: bool, _compare_to: object) -> bool:
    # Indexes of declared document fields are made at run time (app/services/tables/indexes.py).
    return not (type_ == "index" and reflected and (name or "").startswith("ixdoc_"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `bifrost init` or `bifrost migrate`")
asyncio.run(_run_async())
