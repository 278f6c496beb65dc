"""The run's bookkeeping statements, compiled once per database and executed with the least machinery.

Every execution writes an INSERT and an outcome UPDATE (and a ``Running`` mark when it queued).
Through ``AsyncConnection.execute`` each cost about 0.07 ms of CPU in SQLAlchemy alone (cache key,
execution context, result) on top of the database's own work: a tenth of a run's server CPU
(``bench/peers.py``, docs/performance.md "Against Celery"). A :class:`Prepared` statement is compiled
once per dialect; its parameters go through the same bind processors SQLAlchemy applies (JSON, UTC
datetimes, booleans), and it runs in the session's current transaction: on SQLite straight on the
``sqlite3`` connection (statements already run inline on the event loop, see :mod:`app.sqlite_inline`),
elsewhere through ``exec_driver_sql`` (no compilation, the driver's own transaction handling).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable


class Prepared:
    """A Core statement with its compiled form cached per dialect.

    Args:
        statement: The statement; ``IN`` lists must be written as ``OR`` of comparisons (an expanding
            ``IN`` is rendered per execution, which is what this avoids).
        column_keys: For an INSERT, the columns every execution supplies (all of them, in practice).
    """

    def __init__(self, statement: Executable, column_keys: tuple[str, ...] | None = None) -> None:
        self.statement = statement
        self.column_keys = column_keys
        self._compiled: dict[tuple[str, str], tuple[Any, str, tuple[str, ...], dict[str, Callable[[Any], Any]]]] = {}

    def _for(self, dialect: Dialect) -> tuple[Any, str, tuple[str, ...], dict[str, Callable[[Any], Any]]]:
        key = (dialect.name, dialect.driver)
        found = self._compiled.get(key)
        if found is None:
            compiled = self.statement.compile(  # type: ignore[attr-defined]
                dialect=dialect, column_keys=list(self.column_keys) if self.column_keys else None
            )
            if not compiled.positional or "POSTCOMPILE" in compiled.string:
                raise ValueError(f"{dialect.name}: a prepared statement needs positional, fixed parameters")
            found = (compiled, compiled.string, tuple(compiled.positiontup), dict(compiled._bind_processors))
            self._compiled[key] = found
        return found

    def sql(self, dialect: Dialect) -> str:
        """The statement's SQL for ``dialect`` (compiled once)."""
        return self._for(dialect)[1]

    def parameters(self, dialect: Dialect, values: Mapping[str, Any]) -> list[Any]:
        """The driver's positional parameters for ``values`` (bind processors applied, defaults filled)."""
        compiled, _sql, names, processors = self._for(dialect)
        params = compiled.construct_params(values)
        return [processors[name](params[name]) if name in processors else params[name] for name in names]

    async def execute(self, session: AsyncSession, values: Mapping[str, Any]) -> int:
        """Run in the session's transaction (begun if needed); returns the number of rows written."""
        connection = await session.connection()
        dialect = connection.dialect
        _compiled, sql, _names, _processors = self._for(dialect)
        args = self.parameters(dialect, values)
        if dialect.name == "sqlite":
            # The session's connection is checked out and begun: its DBAPI connection is at hand (no
            # greenlet hop as through get_raw_connection()).
            raw = getattr(connection.sync_connection.connection.driver_connection, "_connection", None)  # type: ignore[union-attr]
            if isinstance(raw, sqlite3.Connection):
                return raw.execute(sql, args).rowcount
        result = await connection.exec_driver_sql(sql, tuple(args))
        return int(result.rowcount)


class PreparedWrite:
    """A :class:`Prepared` statement run once per ``values`` entry: a group commit's write without a session.

    Callable with a session like any other group-commit write (it then runs through :meth:`Prepared.execute`);
    on SQLite the group committer runs a group made only of these straight on ``sqlite3`` instead
    (:meth:`run_raw`), in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` without SQLAlchemy's session.

    Args:
        prepared: The statement.
        values: One mapping of parameters per execution.
    """

    def __init__(self, prepared: Prepared, values: list[Mapping[str, Any]]) -> None:
        self.prepared = prepared
        self.values = values

    async def __call__(self, session: AsyncSession) -> list[int]:
        """Run in ``session``'s transaction; the rows written per ``values`` entry."""
        return [await self.prepared.execute(session, values) for values in self.values]

    def run_raw(self, connection: sqlite3.Connection, dialect: Dialect) -> list[int]:
        """Run on a ``sqlite3`` connection in the transaction its caller began; the rows written per entry."""
        sql = self.prepared.sql(dialect)
        return [connection.execute(sql, self.prepared.parameters(dialect, values)).rowcount for values in self.values]
