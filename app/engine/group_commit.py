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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]
_RELAXED_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


class GroupCommitter:
    """Runs queued writes, all that are waiting, in one transaction at a time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # (write, its caller's future, whether it may skip the WAL flush)
        self._waiting: list[tuple[Write, asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # committed groups (tests and benchmarks read it)
        bind = sessions.kw.get("bind")
        self._postgres = bind is not None and bind.dialect.name == "postgresql"
        # Whether new runs' INSERTs should come here too. On SQLite (one connection, one writer) sharing
        # a commit only saves work. On Postgres, submits on their own connections commit in parallel and
        # the server flushes their WAL together; queued behind this single writer, each durable group
        # would wait for the fsync of the one before (measured: no gain at 16 clients, worse at load 11).
        self.takes_inserts = not self._postgres

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
