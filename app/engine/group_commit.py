"""Group commit: the dispatcher's writes that arrive together share one transaction.

Under concurrency a worker's result (finish run A) and the hand-over of that worker to the next
queued run (mark run B ``Running``) arrive within the same few microseconds; written one
transaction each, every run costs an extra commit and the freed worker waits for two commits
instead of one. :class:`GroupCommitter` queues such writes and runs all that are waiting in one
transaction: one commit for the lot, and nothing waits longer than the transaction in progress.

A write is a coroutine function of the session. If the shared transaction fails, each write of
that group is tried again alone, so one bad write fails only its own caller (the writes are plain
``UPDATE``/``INSERT`` statements, safe to run again after a rollback). With one write at a time
(one client) this is exactly one transaction per write, as before.

A write may be marked not ``durable`` (a run's outcome): on Postgres a group made only of such
writes commits with ``synchronous_commit`` off, so it does not wait for the WAL flush (an fsync, 1-3
ms on a small VM). A crash of this server loses nothing (Postgres has the commit); a crash of
Postgres or of the machine may lose the last fraction of a second of such commits, which is what
SQLite's ``synchronous=NORMAL`` already allows for every commit. Inserts of new runs and marks of
runs ``Running`` stay durable, so a run can never be run twice (docs/performance.md, "Against Celery").

On Postgres the two writes every run makes go further (:meth:`GroupCommitter.finish`,
:meth:`GroupCommitter.mark_running`): all of them that are waiting are ONE autocommit statement on a driver
connection (:func:`group_statement`), not BEGIN, (SET LOCAL), one UPDATE per run and COMMIT through a
session. When the workers are busy, the outcomes of the runs that just finished and the marks of the queued
runs that take their workers arrive together and share that statement: per run, one statement and one
commit fewer. A statement of outcomes only turns its own commit asynchronous
(``set_config('synchronous_commit', 'off', true)`` in the statement: the setting is read at the commit
that ends the statement's implicit transaction); a statement with marks commits durably, outcomes and all.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar, cast, overload

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app import db
from app.db import transaction
from app.models.base import utcnow
from app.services.executions.prepared import PreparedWrite
from bifrost.enums import ExecutionStatus

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")

_NOT_ENDED = ", ".join(
    f"'{s.value}'" for s in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.AWAITING_APPROVAL)
)

# Postgres: a group's new runs, outcomes (with their last log lines) and queued runs to mark Running, in ONE
# statement (:func:`group_statement`). Each run's UPDATE finds its row by primary key equality with a scalar
# parameter (one data-modifying WITH per run): the only form whose cached generic plan is the primary key's
# index scan on a table never analysed (this machine's Postgres runs without autovacuum). ``id = ANY($1)`` or a
# join with unnest(...) or VALUES was planned, once the driver's prepared statement went generic, as a scan
# of the whole table or of every row version ever Pending in the status index: the cost grew with the history.
# The status guards are written ``e.status || ''`` for the same reason: an expression no index covers, so the
# planner cannot prefer the (status, created_at, id) index, whose Pending range holds every dead version.
_OUTCOME_COLUMNS = (
    "status", "result", "error_message", "error_type", "error_traceback", "user_error", "started_at",
    "completed_at", "duration_ms",
)  # fmt: skip
_OUTCOME_TYPES = ("text", "text", "text", "text", "text", "bool", "timestamptz", "timestamptz", "int")
_LOG_TYPES = ("text", "int", "timestamptz", "text", "text", "text")
# At most this many outcomes and this many marks per statement (the others wait for the next one): each
# count is a statement text of its own, prepared once per connection.
MAX_PER_STATEMENT = 4
# Driver connections the committer keeps between its statements (Postgres): enough for the group statement
# and a few sessions' needs at 16 clients; the pool (10 + 10) keeps the rest for sessions.
_MAX_HELD_CONNECTIONS = 4


@functools.cache
def group_statement(*, outcomes: int, logs: bool, marks: int, insert_columns: tuple[str, ...] = ()) -> str:
    """The one statement of a Postgres group: new runs, ``outcomes`` with their log lines, and ``marks``.

    Parameters, in order (:func:`group_args`): for new runs, their rows as one JSON array (columns
    ``insert_columns``); per outcome, its id then its :data:`_OUTCOME_COLUMNS`; for logs, the six columns
    of ``execution_log`` as arrays; for marks, the start time then each run's id and token hash.
    It returns one row ``(part, id)`` per run written: ``'i'`` for a run inserted, ``'f'`` for an outcome
    stored (a run that had ended already is left alone, as ``ExecutionService.finish`` does), ``'m'`` for a
    run marked (one no longer ``Pending``, e.g. cancelled, is not).

    A statement with new runs or marks commits durably (an accepted run must survive a crash, and a run
    marked Running must never run again); one of outcomes only turns its own commit asynchronous
    (``set_config('synchronous_commit', 'off', true)``, read at the commit that ends the statement's implicit
    transaction; see the module docstring).
    """
    parts: list[str] = []
    selects: list[str] = []
    n = 0

    def param(kind: str) -> str:
        nonlocal n
        n += 1
        return f"${n}::{kind}"

    if insert_columns:
        # Column names are written into the statement: only plain identifiers (they come from the model).
        if not all(column.isidentifier() and column.isascii() for column in insert_columns):
            raise ValueError(f"not a column name: {insert_columns!r}")
        # The rows as JSON, typed by the table's own row type: one parameter however many runs and columns.
        columns = ", ".join(insert_columns)
        parts.append(
            f"""inserted AS (
    INSERT INTO execution ({columns})
    SELECT {columns} FROM json_populate_recordset(NULL::execution, {param("json")})
 RETURNING id
)"""
        )
        selects.append("SELECT 'i' AS part, id FROM inserted")
    relaxed = "" if marks or insert_columns else ", set_config('synchronous_commit', 'off', true)"
    for i in range(outcomes):
        execution_id = param("text")
        v = {column: param(kind) for column, kind in zip(_OUTCOME_COLUMNS, _OUTCOME_TYPES, strict=True)}
        parts.append(
            f"""finished{i} AS (
    UPDATE execution AS e
       SET status = {v["status"]}, result = {v["result"]}::json, error_message = {v["error_message"]},
           error_type = {v["error_type"]}, error_traceback = {v["error_traceback"]}, user_error = {v["user_error"]},
           started_at = coalesce({v["started_at"]}, e.started_at), completed_at = {v["completed_at"]},
           sdk_token_hash = NULL, duration_ms = {v["duration_ms"]}
     WHERE e.id = {execution_id} AND e.status || '' IN ({_NOT_ENDED})
 RETURNING e.id
)"""
        )
        selects.append(f"SELECT 'f' AS part, id{relaxed} FROM finished{i}")
    if logs:
        columns = ", ".join(param(f"{kind}[]") for kind in _LOG_TYPES)
        # A data-modifying WITH runs once whether or not it is referenced.
        parts.append(
            f"""logs AS (
    INSERT INTO execution_log (execution_id, seq, "timestamp", level, logger, message)
    SELECT * FROM unnest({columns})
)"""
        )
    started = param("timestamptz") if marks else ""
    for i in range(marks):
        execution_id, token_hash = param("text"), param("text")
        parts.append(
            f"""marked{i} AS (
    UPDATE execution AS e
       SET status = '{ExecutionStatus.RUNNING.value}', started_at = {started}, sdk_token_hash = {token_hash}
     WHERE e.id = {execution_id} AND e.status || '' = '{ExecutionStatus.PENDING.value}'
 RETURNING e.id
)"""
        )
        selects.append(f"SELECT 'm' AS part, id FROM marked{i}")
    if not selects:
        raise ValueError("a group statement needs new runs, outcomes or marks")
    return "WITH " + ",\n".join(parts) + "\n" + "\nUNION ALL\n".join(selects)


def insert_row(record: Mapping[str, Any]) -> str:
    """A new run's row as the JSON object :func:`group_statement` inserts (datetimes as UTC ISO text).

    Raises:
        TypeError: A value (in ``input_data``, say) is not JSON, as the ORM's own JSON column would refuse it.
    """
    return json.dumps({k: _aware(v).isoformat() if isinstance(v, datetime) else v for k, v in record.items()})


@dataclass
class Outcome:
    """A run's outcome as :meth:`GroupCommitter.finish` stores it (the fields of ``ExecutionService.finish``)."""

    execution_id: str
    status: str
    result: Any
    error_message: str | None
    error_type: str | None
    error_traceback: str | None
    user_error: bool
    started_at: datetime | None
    completed_at: datetime
    duration_ms: int | None
    logs: Sequence[dict[str, Any]] = field(default_factory=list)


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    """A naive datetime read as UTC (the platform's rule, UTCDateTime), so the driver does not guess."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def group_args(
    outcomes: Sequence[Outcome], marks: Sequence[tuple[str, str]], started_at: datetime, rows: Sequence[str] = ()
) -> list[Any]:
    """The positional arguments of :func:`group_statement` for new runs' ``rows`` (:func:`insert_row`), ``outcomes`` and ``marks``.

    Results go as JSON text and None as SQL NULL (as the ORM stores it: JSON ``none_as_null`` on Postgres).
    """
    args: list[Any] = []
    if rows:
        args.append("[" + ",".join(rows) + "]")
    for o in outcomes:
        args += [
            o.execution_id, o.status, None if o.result is None else json.dumps(o.result), o.error_message,
            o.error_type, o.error_traceback, o.user_error, _aware(o.started_at), _aware(o.completed_at),
            o.duration_ms,
        ]  # fmt: skip
    logs = [row for outcome in outcomes for row in outcome.logs]
    if logs:
        args += [
            [row["execution_id"] for row in logs],
            [row["seq"] for row in logs],
            [_aware(row["timestamp"]) for row in logs],
            [row["level"] for row in logs],
            [row["logger"] for row in logs],
            [row["message"] for row in logs],
        ]
    if marks:
        args.append(started_at)
        for execution_id, token_hash in marks:
            args += [execution_id, token_hash]
    return args


class _NewRow(NamedTuple):
    """A new run waiting for its group's statement: its columns and its row as JSON (:func:`insert_row`)."""

    columns: tuple[str, ...]
    row: str


@dataclass
class _HeldConnection:
    """A pooled connection kept checked out by the group committer between its statements (Postgres)."""

    connection: AsyncConnection
    driver: Any  # the asyncpg connection
    last_used: float = 0.0


@dataclass
class _Group:
    """What one Postgres group statement writes, with each caller's future."""

    inserts: list[tuple[_NewRow, asyncio.Future[bool]]]
    outcomes: list[tuple[Outcome, asyncio.Future[bool]]]
    marks: list[tuple[tuple[str, str], asyncio.Future[bool]]]

    def parts(self) -> int:
        """How many kinds of write it holds."""
        return bool(self.inserts) + bool(self.outcomes) + bool(self.marks)

    def split(self) -> list[_Group]:
        """Its outcomes, its marks and each of its new runs as groups of their own."""
        alone = [_Group([insert], [], []) for insert in self.inserts]
        if self.outcomes:
            alone.append(_Group([], self.outcomes, []))
        if self.marks:
            alone.append(_Group([], [], self.marks))
        return alone

    def futures(self) -> list[asyncio.Future[bool]]:
        """Every caller's future."""
        return [future for _, future in [*self.inserts, *self.outcomes, *self.marks]]

    def fail(self, exc: BaseException) -> None:
        """Fail every caller still waiting with ``exc``."""
        for future in self.futures():
            if not future.done():
                future.set_exception(exc)


class GroupCommitter:
    """Runs queued writes, all that are waiting, in one transaction at a time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # (write, its caller's future, whether it may skip the WAL flush)
        self._waiting: list[tuple[Write, asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # committed groups (tests and benchmarks read it)
        self.raw_transactions = 0  # of which straight on sqlite3
        bind = sessions.kw.get("bind")
        self._postgres = bind is not None and bind.dialect.name == "postgresql"
        # Whether new runs' INSERTs come to run() as prepared writes (SQLite: one connection, one writer, a
        # shared commit only saves work). On Postgres they come to insert() instead, into the group's one
        # statement (a session transaction per group made each durable group wait for the fsync of the one
        # before: no gain at 16 clients, worse at load 11; one statement per group pays off).
        self.takes_inserts = not self._postgres
        # SQLite: a group made only of prepared statements runs on sqlite3 itself (_write_raw_sqlite).
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        # That process's one SQLite connection, as last checked out (used directly while it sits idle in the pool).
        self._idle_sqlite: sqlite3.Connection | None = None
        # Postgres: new runs, outcomes and Running marks as one driver statement per group (insert, finish,
        # mark_running).
        self.one_statement = self._postgres
        self._engine = bind
        self._outcomes: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._marks: list[tuple[tuple[str, str], asyncio.Future[bool]]] = []
        self._inserts: list[tuple[_NewRow, asyncio.Future[bool]]] = []
        self._stater: asyncio.Task[None] | None = None
        self.statements = 0  # one-statement groups run (tests read it)
        self.combined = 0  # of which wrote more than one kind (new runs, outcomes, marks) together
        # Driver connections kept checked out between statements (see _driver), most recently used last.
        self._held: list[_HeldConnection] = []
        self.max_held = _MAX_HELD_CONNECTIONS
        self._closed = False

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]], *, durable: bool = True) -> T:
        """Run ``write(session)`` in the next group's transaction; returns its result once committed.

        Args:
            write: The write, a coroutine function of the group's session.
            durable: False for a write that may be lost with the last commits of a crash of the
                database or the machine (see the module docstring); Postgres then skips the WAL flush.

        Raises:
            Exception: Whatever ``write`` raised when it was tried alone.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future, not durable and self._postgres))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="bifrost-group-commit")
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            relaxed = all(flag for _, _, flag in group)
            if self._sqlite and all(isinstance(write, PreparedWrite) for write, _, _ in group):
                raw_results = await self._write_raw_sqlite(group)
                if raw_results is not None:
                    self.transactions += 1
                    self.raw_transactions += 1
                    for (_, future, _), result in zip(group, raw_results, strict=True):
                        if not future.done():
                            future.set_result(result)
                    continue
            try:
                async with transaction(self.sessions) as session:
                    if relaxed:
                        await session.execute(_RELAXED_COMMIT)
                    results = [await write(session) for write, _, _ in group]
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled: nobody may wait forever
                    for _, future, _ in group + self._waiting:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                # Find the culprit: each write alone, so the others still land.
                await self._one_by_one(group)
                continue
            self.transactions += 1
            for (_, future, _), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _write_raw_sqlite(self, group: list[tuple[Write, asyncio.Future[Any], bool]]) -> list[Any] | None:
        """SQLite: a group of :class:`PreparedWrite` in one transaction straight on ``sqlite3``; None to take the session path.

        It runs on the process's one SQLite connection while no session has it (so none runs beside it):
        while that connection sits idle in the pool, on it directly (a checkout and check-in through the pool
        cost ~50 µs, more than the group's statements); otherwise checked out as usual. The transaction is
        synchronous from ``BEGIN IMMEDIATE`` (as the engine's own begin hook runs it) to ``COMMIT``, never
        awaiting, so nothing else on the event loop can take the connection meanwhile. Statements go through
        SQLAlchemy's bind processors (:class:`Prepared`). Busy (another process holds the write lock) or any
        failure: rolled back, and the session path (asynchronous busy retry, then one by one) takes over.
        """
        assert self._engine is not None
        idle = self._idle_sqlite
        if idle is not None and self._engine.sync_engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
            try:
                return self._raw_sqlite_transaction(idle, group)
            except sqlite3.ProgrammingError:
                self._idle_sqlite = None  # closed: the pool replaced it; check the new one out below
        async with self._engine.connect() as connection:
            raw = getattr(connection.sync_connection.connection.driver_connection, "_connection", None)  # type: ignore[union-attr]
            if not isinstance(raw, sqlite3.Connection):
                return None
            self._idle_sqlite = raw
            return self._raw_sqlite_transaction(raw, group)

    def _raw_sqlite_transaction(
        self, raw: sqlite3.Connection, group: list[tuple[Write, asyncio.Future[Any], bool]]
    ) -> list[Any] | None:
        """``group`` in one ``BEGIN IMMEDIATE`` … ``COMMIT`` on ``raw``; None (rolled back) to take the session path.

        Raises:
            sqlite3.ProgrammingError: ``raw`` is closed (nothing was run).
        """
        assert self._engine is not None
        if raw.in_transaction:
            return None
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.Error:
            return None  # busy: the session path waits for the lock without blocking the loop
        dialect = self._engine.dialect
        try:
            results = [cast(PreparedWrite, write).run_raw(raw, dialect) for write, _, _ in group]
            raw.execute("COMMIT")
        except Exception:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            return None
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        return results

    async def _one_by_one(self, group: list[tuple[Write, asyncio.Future[Any], bool]]) -> None:
        for write, future, _ in group:  # durable alone: this path is rare
            try:
                async with transaction(self.sessions) as session:
                    result = await write(session)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            self.transactions += 1
            if not future.done():
                future.set_result(result)

    # ----- Postgres: one statement per group ------------------------------------------------------------
    async def insert(self, record: Mapping[str, Any]) -> None:
        """Insert a new run in the next group's one durable statement (Postgres only); returns once committed.

        Runs submitted together, and the outcomes and marks waiting with them, share one round trip and
        one commit (a WAL flush: the run is durable before anyone is told it was accepted).

        Args:
            record: Every column of the new ``execution`` row.

        Raises:
            TypeError: A value is not JSON (nothing was written).
            Exception: The database refused the row (it was tried alone; nothing was written).
        """
        row = insert_row(record)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inserts.append((_NewRow(tuple(record), row), future))
        self._start_statements()
        await future

    async def finish(self, outcome: Outcome) -> bool:
        """Store ``outcome`` in the next group's one statement (Postgres only).

        Returns:
            Whether it was stored (False: the run had ended already, e.g. cancelled).

        Raises:
            Exception: The group's statement failed (the caller stores it the session's way).
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, future))
        self._start_statements()
        return await future

    async def mark_running(self, marks: Sequence[tuple[str, str]]) -> list[bool]:
        """Write queued runs ``Running`` with their token hashes in the next group's one durable statement (Postgres only).

        The runs that finish while the workers are busy and the queued runs that take their workers arrive
        together: one statement stores those outcomes and marks these runs (a round trip and a commit per
        run fewer than a statement each).

        Args:
            marks: ``(execution_id, token_hash)`` per run.

        Returns:
            Per run, whether it was still ``Pending`` (and is now ``Running``).

        Raises:
            Exception: The statement failed (nothing was marked).
        """
        loop = asyncio.get_running_loop()
        futures = []
        for mark in marks:
            future: asyncio.Future[bool] = loop.create_future()
            self._marks.append((mark, future))
            futures.append(future)
        self._start_statements()
        return list(await asyncio.gather(*futures))

    def _start_statements(self) -> None:
        if self._stater is None or self._stater.done():
            self._stater = asyncio.create_task(self._statements(), name="bifrost-group-statement")

    async def _statements(self) -> None:
        """Run the waiting new runs, outcomes and marks, all of them, one statement at a time."""
        while self._inserts or self._outcomes or self._marks:
            # Every new run (one JSON parameter); outcomes and marks up to the statement's size, the rest next.
            group = _Group(self._inserts, self._outcomes[:MAX_PER_STATEMENT], self._marks[:MAX_PER_STATEMENT])
            self._inserts = []
            del self._outcomes[:MAX_PER_STATEMENT], self._marks[:MAX_PER_STATEMENT]
            try:
                try:
                    await self._statement(group)
                    continue
                except Exception as exc:
                    if group.parts() == 1 and len(group.inserts) <= 1:
                        group.fail(exc)
                        continue
                # One bad part (a run's row, an outcome's orphan log line) must not fail the others: the
                # outcomes, the marks and each new run alone.
                for part in group.split():
                    try:
                        await self._statement(part)
                    except Exception as exc:
                        part.fail(exc)
            except BaseException:  # cancelled: nobody may wait forever
                for future in [*group.futures(), *_Group(self._inserts, self._outcomes, self._marks).futures()]:
                    future.cancel()
                raise

    async def _statement(self, group: _Group) -> None:
        """One group statement; sets each caller's result (raises, leaving them unset, if it failed)."""
        outcomes = [o for o, _ in group.outcomes]
        columns = group.inserts[0][0].columns if group.inserts else ()
        if any(new.columns != columns for new, _ in group.inserts):
            raise ValueError("new runs with different columns cannot share a statement")  # then each alone
        sql = group_statement(
            outcomes=len(outcomes), logs=any(o.logs for o in outcomes), marks=len(group.marks), insert_columns=columns
        )
        args = group_args(outcomes, [m for m, _ in group.marks], utcnow(), [new.row for new, _ in group.inserts])
        async with self._driver() as driver:
            rows = await driver.fetch(sql, *args)
        self.statements += 1
        if group.parts() > 1:
            self.combined += 1
        written = {(row[0], row[1]) for row in rows}
        for _, future in group.inserts:
            if not future.done():  # a row the statement did not insert would have failed it
                future.set_result(True)
        for outcome, future in group.outcomes:
            if not future.done():
                future.set_result(("f", outcome.execution_id) in written)
        for (execution_id, _), future in group.marks:
            if not future.done():
                future.set_result(("m", execution_id) in written)

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled connection's driver connection (asyncpg), in autocommit: no transaction is begun on it.

        Under load the committer keeps up to ``max_held`` of them checked out between statements: a checkout
        and check-in through SQLAlchemy's pool cost more of the server's CPU than the statement itself. One
        that waited longer than the pool's idle-ping threshold (``app.db.PING_AFTER_IDLE_SECONDS``) is pinged
        first, as the pool does, and replaced if dead: a database restart meanwhile costs no statement.
        A connection whose statement failed or was interrupted is dropped, not used again: it may be broken.
        """
        assert self._engine is not None
        held = self._held.pop() if self._held else None
        if held is not None and time.monotonic() - held.last_used > db.PING_AFTER_IDLE_SECONDS:
            try:  # as the pool pings a connection that sat idle (app/db.py)
                await held.driver.execute("SELECT 1")
            except Exception:
                await held.connection.invalidate()
                await held.connection.close()
                held = None
        if held is None:
            connection = await self._engine.connect()
            try:
                raw = await connection.get_raw_connection()
            except BaseException:
                await connection.close()
                raise
            held = _HeldConnection(connection, raw.driver_connection)
        try:
            yield held.driver
        except BaseException:
            await held.connection.invalidate()
            await held.connection.close()
            raise
        if len(self._held) < self.max_held and not self._closed:
            held.last_used = time.monotonic()
            self._held.append(held)
        else:
            await held.connection.close()

    async def close(self) -> None:
        """Return the connections kept between statements to the pool (call before the engine is disposed)."""
        self._closed = True  # a statement still at the database gives its connection back when it ends
        held, self._held = self._held, []
        for connection in held:
            await connection.connection.close()
