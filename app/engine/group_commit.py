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
:meth:`GroupCommitter.mark_running`): each group of them is ONE autocommit statement on the driver
connection, not BEGIN, (SET LOCAL), one UPDATE per run and COMMIT through a session: 4-5 round trips and
SQLAlchemy's session machinery per group became one round trip. An outcome statement turns its own
commit asynchronous (``set_config('synchronous_commit', 'off', true)`` in the statement: the setting
is read at the commit that ends the statement's implicit transaction); a mark statement commits
durably, as before.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models.base import utcnow
from app.services.executions.prepared import Prepared, PreparedWrite
from bifrost.enums import ExecutionStatus

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")

_NOT_ENDED = ", ".join(
    f"'{s.value}'" for s in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.AWAITING_APPROVAL)
)

# The outcomes of a group with their last log lines, one statement (Postgres). The log INSERT runs whether or
# not it is referenced (a data-modifying WITH always runs once); unnest of empty arrays inserts nothing. The
# same columns and guard as ExecutionService.finish: only a run not ended yet is written.
FINISH_MANY = f"""
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                         $8::timestamptz[], $9::timestamptz[], $10::int[])
        AS v(id, status, result, error_message, error_type, error_traceback, user_error, started_at,
             completed_at, duration_ms)
), logs AS (
    INSERT INTO execution_log (execution_id, seq, "timestamp", level, logger, message)
    SELECT * FROM unnest($11::text[], $12::int[], $13::timestamptz[], $14::text[], $15::text[], $16::text[])
), run AS (
    UPDATE execution AS e
       SET status = v.status, result = v.result::json, error_message = v.error_message,
           error_type = v.error_type, error_traceback = v.error_traceback, user_error = v.user_error,
           started_at = coalesce(v.started_at, e.started_at), completed_at = v.completed_at,
           sdk_token_hash = NULL, duration_ms = v.duration_ms
      FROM v
     WHERE e.id = v.id AND e.status IN ({_NOT_ENDED})
 RETURNING e.id
)
SELECT id, set_config('synchronous_commit', 'off', true) FROM run
"""

# Queued runs written Running with their SDK token hashes, one durable statement (Postgres); the ids returned
# are those still Pending (a run cancelled meanwhile is not started).
MARK_MANY = f"""
UPDATE execution AS e
   SET status = '{ExecutionStatus.RUNNING.value}', started_at = $1, sdk_token_hash = v.token_hash
  FROM unnest($2::text[], $3::text[]) AS v(id, token_hash)
 WHERE e.id = v.id AND e.status = '{ExecutionStatus.PENDING.value}'
RETURNING e.id
"""


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


def _aware(value: datetime | None) -> datetime | None:
    """A naive datetime read as UTC (the platform's rule, UTCDateTime), so the driver does not guess."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def finish_many_args(outcomes: Sequence[Outcome]) -> list[Any]:
    """The positional arguments of :data:`FINISH_MANY` for ``outcomes`` (results as JSON text, None as NULL)."""
    logs = [row for outcome in outcomes for row in outcome.logs]
    return [
        [o.execution_id for o in outcomes],
        [o.status for o in outcomes],
        # SQL NULL for None, as the ORM stores it (JSON none_as_null on Postgres).
        [None if o.result is None else json.dumps(o.result) for o in outcomes],
        [o.error_message for o in outcomes],
        [o.error_type for o in outcomes],
        [o.error_traceback for o in outcomes],
        [o.user_error for o in outcomes],
        [_aware(o.started_at) for o in outcomes],
        [_aware(o.completed_at) for o in outcomes],
        [o.duration_ms for o in outcomes],
        [row["execution_id"] for row in logs],
        [row["seq"] for row in logs],
        [_aware(row["timestamp"]) for row in logs],
        [row["level"] for row in logs],
        [row["logger"] for row in logs],
        [row["message"] for row in logs],
    ]


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
        # Whether new runs' INSERTs should come here too. On SQLite (one connection, one writer) sharing
        # a commit only saves work. On Postgres, submits on their own connections commit in parallel and
        # the server flushes their WAL together; queued behind this single writer, each durable group
        # would wait for the fsync of the one before (measured: no gain at 16 clients, worse at load 11).
        self.takes_inserts = not self._postgres
        # SQLite: a group made only of prepared statements runs on sqlite3 itself (_write_raw_sqlite).
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        # Postgres: outcomes and Running marks as one driver statement per group (finish, mark_running).
        self.one_statement = self._postgres
        self._engine = bind
        self._outcomes: list[tuple[Outcome, asyncio.Future[bool]]] = []
        self._finisher: asyncio.Task[None] | None = None
        self.statements = 0  # one-statement groups run (tests read it)

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

        The process's one SQLite connection is checked out from the pool (so no session runs beside it),
        ``BEGIN IMMEDIATE`` runs as the engine's own begin hook does, and each statement goes through
        SQLAlchemy's bind processors (:class:`Prepared`). Busy (another process holds the write lock) or
        any failure: rolled back, and the session path (asynchronous busy retry, then one by one) takes over.
        """
        assert self._engine is not None
        async with self._engine.connect() as connection:
            raw = getattr(connection.sync_connection.connection.driver_connection, "_connection", None)  # type: ignore[union-attr]
            if not isinstance(raw, sqlite3.Connection) or raw.in_transaction:
                return None
            dialect = self._engine.dialect
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                return None  # busy: the session path waits for the lock without blocking the loop
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
    async def finish(self, outcome: Outcome) -> bool:
        """Store ``outcome`` in the next outcome group's one statement (Postgres only).

        Returns:
            Whether it was stored (False: the run had ended already, e.g. cancelled).

        Raises:
            Exception: The group's statement failed (the caller stores it the session's way).
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, future))
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.create_task(self._finish_all(), name="bifrost-group-finish")
        return await future

    async def _finish_all(self) -> None:
        while self._outcomes:
            group, self._outcomes = self._outcomes, []
            try:
                async with self._driver() as driver:
                    rows = await driver.fetch(FINISH_MANY, *finish_many_args([o for o, _ in group]))
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # cancelled: nobody may wait forever
                for _, future in group + self._outcomes:
                    future.cancel()
                raise
            self.statements += 1
            stored = {row[0] for row in rows}
            for outcome, future in group:
                if not future.done():
                    future.set_result(outcome.execution_id in stored)

    async def mark_running(self, marks: Sequence[tuple[str, str]]) -> list[bool]:
        """Write queued runs ``Running`` with their token hashes in one durable statement (Postgres only).

        Args:
            marks: ``(execution_id, token_hash)`` per run.

        Returns:
            Per run, whether it was still ``Pending`` (and is now ``Running``).
        """
        async with self._driver() as driver:
            rows = await driver.fetch(MARK_MANY, utcnow(), [m[0] for m in marks], [m[1] for m in marks])
        self.statements += 1
        marked = {row[0] for row in rows}
        return [execution_id in marked for execution_id, _ in marks]

    async def execute_alone(self, prepared: Prepared, values: Mapping[str, Any]) -> int:
        """Run ``prepared`` with ``values`` as one durable autocommit statement (Postgres only).

        For a new run's INSERT: no session, no BEGIN or COMMIT, and the submits on their own connections
        still commit in parallel (their WAL flushed together by the server).

        Returns:
            The number of rows written.
        """
        assert self._engine is not None
        dialect = self._engine.dialect
        sql, args = prepared.sql(dialect), prepared.parameters(dialect, values)
        async with self._driver() as driver:
            status = await driver.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1]) if status and status.rsplit(" ", 1)[-1].isdigit() else 0

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled connection's driver connection (asyncpg), in autocommit: no transaction is begun on it.

        A connection whose statement failed is dropped, not pooled again: it may be broken.
        """
        assert self._engine is not None
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                yield raw.driver_connection
            except BaseException:
                await connection.invalidate()
                raise
