"""SQLite statements run on the event loop's thread instead of aiosqlite's helper thread.

Why: aiosqlite sends every call (cursor, execute, fetch, commit...) to a helper
thread and back. On a local WAL database one statement takes microseconds, but a
transaction costs a dozen thread round trips (~2 ms on two cores), which was most
of the latency of a workflow run. Running the calls inline makes a transaction
cost ~0.2 ms.

A second kind of connection, :class:`ThreadedSQLiteConnection`, serves reads that may take long
(history lists, table queries): WAL lets them read a snapshot next to the writer, in a thread, so
a slow read never holds the writer connection or the event loop.

The only call that may wait is ``BEGIN IMMEDIATE`` while another *process* holds
the write lock (``bifrost run`` beside ``bifrost serve``). SQLite's own busy
timeout is kept short so the loop never blocks long, and a busy BEGIN is retried
with an asynchronous sleep until :data:`BUSY_RETRY_SECONDS` pass.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import aiosqlite

# Longest the event loop may block inside SQLite waiting for a lock (PRAGMA busy_timeout, ms).
BLOCKING_BUSY_TIMEOUT_MS = 20
# How long a BEGIN may keep retrying (asynchronously) while another process writes.
BUSY_RETRY_SECONDS = 30.0


class InlineSQLiteConnection(aiosqlite.Connection):
    """aiosqlite's connection API with every call executed directly (no helper thread)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if args and isinstance(args[0], str) and args[0].lstrip()[:5].upper() == "BEGIN":
            return await self._begin(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _begin(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        delay = 0.005
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _connect(self) -> InlineSQLiteConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Any:
        return self._connect().__await__()

    def stop(self) -> None:  # type: ignore[override]
        """Close the sqlite3 connection (there is no helper thread to stop)."""
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def inline_creator(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for SQLAlchemy's aiosqlite dialect that opens inline connections to ``path``."""

    def connector() -> sqlite3.Connection:
        # isolation_level=None: SQLAlchemy's "begin" event issues BEGIN IMMEDIATE itself.
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def creator() -> InlineSQLiteConnection:
        return await InlineSQLiteConnection(connector, 64)

    return creator


# Reads that may take long run here, off the event loop: sqlite3 releases the GIL while a statement
# steps, so the loop (and the writer connection every run uses) keeps going meanwhile. Two threads:
# the machine's cores; more reads queue.
_READ_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bifrost-sqlite-read")


class ThreadedSQLiteConnection(InlineSQLiteConnection):
    """A read connection: each call runs in a shared thread pool, never on the event loop.

    aiosqlite would start one thread per connection (which blocks interpreter exit when not closed);
    a shared pool costs one hand-off per call, a fraction of a millisecond, for reads that are not on
    a run's path.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return await asyncio.get_running_loop().run_in_executor(_READ_EXECUTOR, partial(fn, *args, **kwargs))


def threaded_creator(path: str) -> Callable[[], Any]:
    """An ``async_creator`` of read connections to ``path`` (see :class:`ThreadedSQLiteConnection`)."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def creator() -> ThreadedSQLiteConnection:
        return await ThreadedSQLiteConnection(connector, 64)

    return creator
