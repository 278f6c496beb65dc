"""Litestar's asyncpg LISTEN/NOTIFY channels backend, publishing over one kept connection (see events.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend


class PostgresBackend(AsyncPgChannelsBackend):
    """Litestar's asyncpg LISTEN/NOTIFY backend, publishing over one kept connection.

    The stock backend opens a connection for every publish (a few milliseconds each); a burst of log
    lines would queue behind those connects. Here one connection is kept and replaced when it breaks.

    Args:
        dsn: A ``postgresql://`` DSN.
    """

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn=dsn)
        self._publisher: Any = None

    async def on_startup(self) -> None:
        """Open the listening connection (the publishing one opens on first use); also to reconnect."""
        self._subscribed_channels.clear()  # a broken connection's LISTENs are gone with it
        await super().on_startup()

    def healthy(self) -> bool:
        """Whether the listening connection is open (LISTEN ends with it; the hub then connects again)."""
        conn = getattr(self, "_listener_conn", None)
        return conn is not None and not conn.is_closed()

    async def on_shutdown(self) -> None:
        """Close both connections."""
        if self._publisher is not None and not self._publisher.is_closed():
            await self._publisher.close()
        self._publisher = None
        await super().on_shutdown()

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        """NOTIFY ``data`` on each channel over the kept connection."""
        if self._publisher is None or self._publisher.is_closed():
            self._publisher = await self._connect()
        text = data.decode("utf-8")
        try:
            for channel in channels:
                await self._publisher.execute("SELECT pg_notify($1, $2)", channel, text)
        except Exception:
            await self._publisher.close()
            self._publisher = None
            raise
