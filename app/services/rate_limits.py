"""Fixed one-minute rate-limit windows: in this process, or shared by every server (database or Redis).

One server keeps its counts in memory (the embedded default: no I/O per call). Several servers behind a
load balancer count in the database (one upsert per call) or in Redis (``INCR`` + ``EXPIRE``), so an
address gets one budget whichever server answers. Windows follow the wall clock (minute since the epoch),
which every server shares; a call just after a window turns may therefore meet a fresh budget, the
usual property of fixed windows. Imports nothing of the service domains.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class Counter(Protocol):
    """Counts calls per key and window."""

    async def hit(self, key: str, window: int) -> int:
        """Count one call of ``key`` in ``window``; return the calls counted in it so far (this one included)."""
        ...


class LocalCounter:
    """Counts in this process; bounded (old windows are forgotten when many addresses pile up)."""

    _MAX_TRACKED = 10_000

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, window: int) -> int:
        """See :meth:`Counter.hit`."""
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            start, count = window, 0
        if len(self._windows) >= self._MAX_TRACKED:
            self._windows = {k: w for k, w in self._windows.items() if w[0] == window}
        self._windows[key] = (start, count + 1)
        return count + 1


_UPSERT = text(
    "INSERT INTO rate_limit_hit (key, window_start, count) VALUES (:key, :window, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN rate_limit_hit.window_start = excluded.window_start THEN rate_limit_hit.count + 1 ELSE 1 END, "
    "window_start = excluded.window_start "
    "RETURNING count"
)


class DatabaseCounter:
    """Counts in the ``rate_limit_hit`` table: one atomic upsert per call, on SQLite or Postgres.

    Args:
        sessions: The platform's session factory.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pruned = 0

    async def hit(self, key: str, window: int) -> int:
        """See :meth:`Counter.hit`."""
        async with transaction(self.sessions) as session:
            if session.get_bind().dialect.name == "postgresql":
                # A count lost in a crash is harmless: do not wait for the WAL flush on every counted call.
                await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            count = int((await session.execute(_UPSERT, {"key": key, "window": window})).scalar_one())
            if self._pruned < window:  # once a minute per server: rows of finished windows go
                self._pruned = window
                await session.execute(text("DELETE FROM rate_limit_hit WHERE window_start < :w"), {"w": window - 1})
        return count


class RedisCounter:
    """Counts in Redis: ``INCR`` of ``bifrost:rl:<window>:<key>``, which expires after two windows.

    Args:
        url: A ``redis://`` URL.
    """

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis  # only when Redis is configured

        self.redis: Any = Redis.from_url(url)

    async def hit(self, key: str, window: int) -> int:
        """See :meth:`Counter.hit`."""
        name = f"bifrost:rl:{window}:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 2 * WINDOW_SECONDS)
            count, _ = await pipe.execute()
        return int(count)


class RateLimits:
    """Every rate limit of a server, on one counter.

    Args:
        counter: Where calls are counted (:class:`LocalCounter` by default).
        shared: Whether the counter is shared by every server (shown in docs and logs).
    """

    def __init__(self, counter: Counter | None = None, *, shared: bool = False) -> None:
        self.counter: Counter = counter or LocalCounter()
        self.shared = shared

    async def retry_after(self, limit: str, per_minute: int, who: str, now: float | None = None) -> float | None:
        """Count one call of ``who`` against ``limit``; None when allowed, else seconds until the next window.

        Args:
            limit: The limit's name (``login``, ``public_endpoint``...).
            per_minute: Calls allowed per window.
            who: The caller: a client address or a user id.
            now: The wall-clock time (tests).
        """
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        count = await self.counter.hit(f"{limit}:{who}"[:300], window)
        if count <= per_minute:
            return None
        return (window + 1) * WINDOW_SECONDS - now
