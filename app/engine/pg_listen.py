"""One Postgres LISTEN connection per process, for the queue's small notifications.

Servers listen for runs that ended (``wait`` answers at once whichever node ran them); nodes
listen for cancels. A dropped connection is reopened after a second; what was said meanwhile is
lost, which is why every waiter also polls the row now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_RECONNECT_SECONDS = 1.0


class PgListener:
    """Calls ``handlers[channel](payload)`` for each notification on its channels.

    Args:
        conninfo: libpq connection string.
        handlers: Channel name → callback (called on the event loop; must not block).
    """

    def __init__(self, conninfo: str, handlers: dict[str, Callable[[str], None]]) -> None:
        self.conninfo = conninfo
        self.handlers = handlers
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Open the connection and LISTEN; returns once listening (or after ``timeout``, still trying)."""
        self._task = asyncio.create_task(self._listen(), name="bifrost-pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout)

    async def stop(self) -> None:
        """Close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        import psycopg
        from psycopg import sql

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as connection:
                    for channel in self.handlers:
                        await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected.set()
                    async for notice in connection.notifies():
                        handler = self.handlers.get(notice.channel)
                        if handler is not None:
                            handler(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("queue notifications: connection lost; reconnecting", exc_info=True)
            self.connected.clear()
            await asyncio.sleep(_RECONNECT_SECONDS)
