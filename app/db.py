"""Database engine, sessions and migrations (SQLite by default, Postgres at scale)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for ``url`` with the right settings per database.

    SQLite gets WAL, ``synchronous=NORMAL``, foreign keys, and ``BEGIN IMMEDIATE``
    transactions on ONE pooled connection whose statements run inline on the event
    loop (see :mod:`app.sqlite_inline`): one writer per process avoids SQLITE_BUSY
    inside the server, and IMMEDIATE makes a second process (``bifrost run`` beside
    ``bifrost serve``) wait, asynchronously, instead of failing.

    Args:
        url: SQLAlchemy async URL (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``).
        **kwargs: Extra arguments for ``create_async_engine``.

    Returns:
        The engine.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        from app.sqlite_inline import BLOCKING_BUSY_TIMEOUT_MS, inline_creator

        database = parsed.database or ":memory:"
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=60, async_creator=inline_creator(database), **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BLOCKING_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+asyncpg"))
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session factory whose objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Open a session and commit at the end of the block (rollback on error).

    Services may commit earlier themselves (``ExecutionService.submit`` commits
    before dispatching); later statements start a new transaction.
    """
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def alembic_config(url: str) -> Any:
    """The Alembic configuration for the database at ``url`` (migrations in ``app/migrations``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Apply every Alembic migration to the database at ``url`` (blocking)."""
    import logging

    from alembic import command

    # Alembic narrates every step at INFO; a server start should stay quiet unless something is wrong.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


async def upgrade_database_async(url: str) -> None:
    """Run :func:`upgrade_database` in a thread (Alembic's env runs its own event loop)."""
    await asyncio.to_thread(upgrade_database, url)
