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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

T = TypeVar("T")
Write = Callable[[AsyncSession], Awaitable[Any]]


class GroupCommitter:
    """Runs queued writes, all that are waiting, in one transaction at a time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # committed groups (tests and benchmarks read it)

    async def run(self, write: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``write(session)`` in the next group's transaction; returns its result once committed.

        Raises:
            Exception: Whatever ``write`` raised when it was tried alone.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="bifrost-group-commit")
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                async with transaction(self.sessions) as session:
                    results = [await write(session) for write, _ in group]
            except BaseException as exc:
                if not isinstance(exc, Exception):  # cancelled: nobody may wait forever
                    for _, future in group + self._waiting:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                # Find the culprit: each write alone, so the others still land.
                await self._one_by_one(group)
                continue
            self.transactions += 1
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, group: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        for write, future in group:
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
