"""Query plans of the statements a service really runs, on SQLite and on Postgres; the seeded read-only
databases those tests share."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database


class Captured:
    """The statements sent to the database while the block ran (``with Captured(session) as seen``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.engine = session.get_bind()
        self.statements: list[tuple[str, Any]] = []

    def _hook(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> Captured:
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def matching(self, fragment: str) -> list[tuple[str, Any]]:
        """The captured statements containing ``fragment``."""
        return [(sql, params) for sql, params in self.statements if fragment in sql]


async def explain(
    session: AsyncSession,
    statement: str,
    parameters: Any,
    disable: tuple[str, ...] = ("enable_seqscan", "enable_bitmapscan", "enable_sort"),
) -> str:
    """The plan of ``statement`` as the driver received it (see :func:`run_and_explain`).

    ``disable``: the Postgres plan types switched off for the EXPLAIN.
    """
    connection = await session.connection()
    if session.get_bind().dialect.name == "sqlite":
        plan = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row[-1]) for row in plan)
    for setting in disable:
        await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    plan = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    return "\n".join(str(row[0]) for row in plan)


async def run_and_explain(session: AsyncSession, stmt: Any) -> tuple[list[Any], str]:
    """Execute ``stmt`` and return its rows and the plan of the SQL the driver received.

    The statement is captured as sent (placeholders and parameters included), so the plan is the one
    of the real query, partial-index conditions and inlined literals included. On Postgres, sequential
    scans, bitmap scans and sorts are disabled for the EXPLAIN: on a test-sized table the planner may
    rightly prefer them, but with them disabled it still uses them when no index can serve the filter
    and the order, so a plan without them proves such an index exists. The planner's own choice at a
    million rows is recorded by ``bench/growth.py``.
    """
    with Captured(session) as seen:
        rows = list((await session.execute(stmt)).all())
    statement, parameters = seen.statements[-1]
    return rows, await explain(session, statement, parameters)


def assert_indexed(plan: str, table: str, dialect: str, index: str | None = None, *, sort_ok: bool = False) -> None:
    """The plan reads ``table`` through an index (``index``, a regular expression, when given), with no full
    scan and no sort.

    ``sort_ok``: the matching rows may be sorted (a filter whose index does not give the order).
    """
    if dialect == "sqlite":
        full_scans = [line for line in plan.splitlines() if re.fullmatch(rf"\s*SCAN {table}( AS \w+)?\s*", line)]
        assert not full_scans, plan
        assert sort_ok or "TEMP B-TREE" not in plan, plan
    else:
        assert f"Seq Scan on {table}" not in plan, plan
        assert sort_ok or not re.search(r"^\s*(->\s*)?Sort\b", plan, re.MULTILINE), plan
    if index is not None:
        assert re.search(index, plan), plan


# ----- databases shared by the read-only tests of a module ---------------------------------------------
# Seeding 1,000+ rows for every test was most of these files' time. A module seeds one database per
# dialect for its tests that only read, and the database then refuses writes, so that no test can change
# what another one reads (a test that writes makes its own database with ``database_url``).
_SQLITE_WRITES = frozenset(
    {
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_VTABLE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_VTABLE,
    }
)


def _refuse_sqlite_writes(dbapi_connection: Any, _record: Any) -> None:
    # An authorizer, not ``PRAGMA query_only``: the app's writer connection begins with BEGIN IMMEDIATE,
    # which query_only refuses even for a transaction that only reads. (Its read connections, the ones
    # ``read_transaction`` gives, are query_only already.)
    raw = getattr(dbapi_connection.driver_connection, "_connection", None)
    assert isinstance(raw, sqlite3.Connection), dbapi_connection
    raw.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action in _SQLITE_WRITES else sqlite3.SQLITE_OK)


def refuse_writes(engine: AsyncEngine) -> None:
    """Make every connection ``engine`` opens to a SQLite file refuse writes ("not authorized").

    Call it on a new engine, before its first connection. Postgres databases of :func:`shared_database`
    refuse writes on every connection already.
    """
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _refuse_sqlite_writes)


@contextmanager
def sqlite_writes_refused() -> Iterator[None]:
    """While the block runs, every new connection of any engine refuses writes, for code that makes its own
    engine (Alembic's); only for a block that connects to SQLite files alone."""
    event.listen(Engine, "connect", _refuse_sqlite_writes)
    try:
        yield
    finally:
        event.remove(Engine, "connect", _refuse_sqlite_writes)


def _postgres_read_only(url: str) -> None:
    import asyncpg

    assert POSTGRES_URL
    name = url.rsplit("/", 1)[1]

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            # Every later session on the database starts read-only: Alembic's, the tests' own engines.
            await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def shared_database(dialect: str, folder: Path, seed: Callable[[str], None]) -> Iterator[str]:
    """A database of ``dialect`` seeded once by ``seed(url)``, refusing writes after that; yields its URL.

    Like the ``database_url`` fixture of ``tests/conftest.py``: a SQLite file in ``folder``, or a Postgres
    database dropped at the end (the test is skipped, with the same reason, without
    BIFROST_TEST_POSTGRES_URL). ``seed`` migrates it (whether it comes migrated or not).

    Args:
        dialect: ``"sqlite"`` or ``"postgres"``.
        folder: A folder of the module's own (``tmp_path_factory.mktemp``), for the SQLite file.
        seed: Writes the data, given the database's URL.
    """
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'shared.db'}"
        seed(url)
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
    url = create_postgres_database()
    try:
        seed(url)
        _postgres_read_only(url)
        yield url
    finally:
        drop_postgres_database(url)
