"""Retention of the audit log: events older than ``BIFROST_AUDIT_RETENTION_DAYS`` are deleted in small batches.

This is the only delete path of the audit log. Each batch is its own short transaction and the loop yields
between batches, so pruning a large backlog never holds the database (SQLite has one writer) or the event
loop for long. Deleting twice from two servers at once is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.models.audit import AuditEvent
from app.models.base import utcnow

log = logging.getLogger(__name__)

BATCH = 500


async def prune_batch(session: AsyncSession, cutoff: datetime, batch: int = BATCH) -> int:
    """Delete up to ``batch`` of the oldest events before ``cutoff``; returns how many were deleted."""
    ids = list(
        (
            await session.execute(
                select(col(AuditEvent.id))
                .where(col(AuditEvent.occurred_at) < cutoff)
                .order_by(col(AuditEvent.occurred_at))
                .limit(batch)
            )
        ).scalars()
    )
    if ids:
        await session.execute(delete(AuditEvent).where(col(AuditEvent.id).in_(ids)))
    return len(ids)


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    retention_days: float,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
    pause_seconds: float = 0.05,
) -> int:
    """Delete every event older than ``retention_days`` (0 or less keeps everything); returns the count."""
    if retention_days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    total = 0
    while True:
        async with transaction(sessions) as session:
            deleted = await prune_batch(session, cutoff, batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(pause_seconds)  # let requests in between batches


class AuditPruner:
    """Runs :func:`prune` at start and then every ``interval_seconds`` in the serving process.

    Args:
        sessions: Session factory.
        retention_days: Keep events this many days (0: forever, the task does nothing).
        interval_seconds: Time between two prunes.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], retention_days: float, interval_seconds: float = 3600.0
    ) -> None:
        self.sessions = sessions
        self.retention_days = retention_days
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (no-op when retention is off or it already runs)."""
        if self.retention_days > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="bifrost-audit-retention")

    async def stop(self) -> None:
        """Stop the background task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                deleted = await prune(self.sessions, self.retention_days)
                if deleted:
                    log.info("audit: pruned %d event(s) older than %g days", deleted, self.retention_days)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("audit: pruning failed; trying again in %s s", self.interval_seconds)
            await asyncio.sleep(self.interval_seconds)
