"""Database engine, sessions and migrations (SQLite by default, Postgres at scale)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
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
            # Straight to sqlite3 when the write lock is free: through SQLAlchemy's statement path
            # BEGIN cost ~0.1 ms of CPU, on every transaction (bench/peers.py, docs/performance.md).
            raw = getattr(connection.connection.driver_connection, "_connection", None)
            if isinstance(raw, sqlite3.Connection):
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.Error:
                    pass  # busy (another process writes): the inline connection retries asynchronously
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(engine.sync_engine, "before_cursor_execute", _indexed_by, retval=True)
        if database != ":memory:" and not database.startswith("file:"):
            _READERS[engine.sync_engine] = _sqlite_reader(url, database, engine, **kwargs)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+asyncpg"))
    engine = create_async_engine(url, pool_size=10, max_overflow=10, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused for longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pre-ping only connections that sat idle in the pool, instead of every checkout (``pool_pre_ping``).

    A ping is a round trip to the server on every transaction, two per run on the hot path
    (docs/performance.md). A connection returned a moment ago is alive; one that waited (the database
    may have restarted meanwhile) is pinged, and a dead one is replaced before anyone uses it.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in_at", 0.0) <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (SQLAlchemy's documented way).
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _indexed_by(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool
) -> tuple[str, Any]:
    """Apply a statement's ``sqlite_indexed_by=(table, index)`` execution option (SQLite's INDEXED BY).

    SQLAlchemy renders no index hints for SQLite. A document table query on a declared field needs
    one: without statistics SQLite rates ``table_id = ?`` on ``(table_id, created_at)`` as selective
    as the field's own index and takes it for the order it gives, reading the whole table.
    """
    hint = context.execution_options.get("sqlite_indexed_by") if context is not None else None
    if hint:
        table, index = hint
        statement = statement.replace(f"FROM {table} ", f"FROM {table} INDEXED BY {index} ", 1)
    return statement, parameters


# The read engine of each SQLite file engine (see :func:`read_transaction`); gone with the engine.
_READERS: weakref.WeakKeyDictionary[Any, async_sessionmaker[AsyncSession]] = weakref.WeakKeyDictionary()


def _sqlite_reader(url: str, database: str, writer: AsyncEngine, **kwargs: Any) -> async_sessionmaker[AsyncSession]:
    """Sessions on read connections to the SQLite file of ``writer`` (WAL: readers never wait for it).

    Their statements run in a thread pool (:class:`app.sqlite_inline.ThreadedSQLiteConnection`), their
    transactions are plain (deferred) BEGINs reading one snapshot, and ``query_only`` refuses writes.
    """
    from app.sqlite_inline import BLOCKING_BUSY_TIMEOUT_MS, threaded_creator

    reader = create_async_engine(
        url, pool_size=2, max_overflow=4, pool_timeout=60, async_creator=threaded_creator(database), **kwargs
    )

    @event.listens_for(reader.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA busy_timeout={BLOCKING_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(reader.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    event.listen(reader.sync_engine, "before_cursor_execute", _indexed_by, retval=True)

    @event.listens_for(writer.sync_engine, "engine_disposed")
    def _on_dispose(_engine: Any) -> None:
        # Runs inside the writer's dispose (a greenlet of the event loop): close the readers too.
        reader.sync_engine.dispose()

    return session_factory(reader)


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


class LazySession:
    """An ``AsyncSession`` made on first use, for a block that often needs none.

    ``ExecutionService.submit`` of an API run finds the workflow and the caller cached and puts its
    INSERT in the dispatcher's group commit: it reads nothing, and making and closing an unused session
    cost about 40 µs of CPU per run (docs/performance.md, "Against Celery"). ``in_transaction()`` and
    ``bind`` answer without making one; any other use makes it, and the block's end closes it.
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    @property
    def bind(self) -> Any:
        """The factory's engine (what the session would be bound to)."""
        return self._session.bind if self._session is not None else self._factory.kw.get("bind")

    def in_transaction(self) -> bool:
        """Whether the session exists and has begun a transaction."""
        return self._session is not None and self._session.in_transaction()

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._factory()
        return getattr(self._session, name)

    async def __aenter__(self) -> LazySession:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.__aexit__(*exc)


@asynccontextmanager
async def read_transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for reads only, on a read connection when the database is a SQLite file.

    Use it for reads that may take long (history lists and pages, table queries): on SQLite they
    then run in a thread on their own connection, next to the writer that every run uses, instead
    of holding that one connection and the event loop. Postgres (and in-memory SQLite) reads use
    ``factory`` itself. Nothing is committed; loaded objects stay usable after the block. The
    snapshot read is the one committed when the block starts: use :func:`transaction` to read
    what the same request has just written and not committed.
    """
    bind = factory.kw.get("bind")
    reader = _READERS.get(bind.sync_engine) if isinstance(bind, AsyncEngine) else None
    async with (reader or factory)() as session:
        yield session


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

    # Alembic narrates every step at INFO, and logs its plugin set-up while ``alembic.command`` is
    # imported: quiet it before that import, so a server start shows nothing unless something is wrong.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


async def upgrade_database_async(url: str) -> None:
    """Run :func:`upgrade_database` in a thread (Alembic's env runs its own event loop)."""
    await asyncio.to_thread(upgrade_database, url)
