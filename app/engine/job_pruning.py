"""Finished procrastinate jobs pruned: the queue's tables keep only live jobs and a short window of ended ones.

A node deletes a run's job when the run ends normally (``delete_jobs="successful"``), but jobs that end
otherwise stay: ``failed`` (a lost node's, a task error), ``cancelled``, ``aborted``, and any ``succeeded``
one a path left behind, each with its ``procrastinate_events`` rows. The ``execution`` rows are the
history (kept under the execution retention); the jobs are only the queue's bookkeeping, so ended jobs
whose last event is older than :data:`KEEP_SECONDS` are deleted (their events go with them: ON DELETE
CASCADE), in small batches, each in its own short transaction under a transaction advisory lock: when
several servers and nodes prune at once, one does it and the others skip.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600.0  # ended jobs stay an hour (enough to look at a failure in the queue's own tables)
PRUNE_EVERY_SECONDS = 600.0
BATCH = 1_000
_LOCK = 0x62696672_6A707275  # pg_try_advisory_xact_lock key ("bifrjpru")

# A job is "ended since" its newest event (procrastinate writes one at each change of status); a job with
# no event at all has nothing to say when it ended and counts as old. A job a periodic defer still points
# to is left (its foreign key has no cascade; Bifrost defers none, procrastinate's own periodic tasks might).
_PRUNE = text(
    """
    DELETE FROM procrastinate_jobs
     WHERE id IN (
        SELECT j.id FROM procrastinate_jobs j
         WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
           AND NOT EXISTS (
               SELECT 1 FROM procrastinate_events e
                WHERE e.job_id = j.id AND e.at >= NOW() - make_interval(secs => :keep))
           AND NOT EXISTS (SELECT 1 FROM procrastinate_periodic_defers d WHERE d.job_id = j.id)
         ORDER BY j.id
         LIMIT :batch
           FOR UPDATE OF j SKIP LOCKED)
    """
)
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def prune_finished_jobs(
    sessions: async_sessionmaker[AsyncSession], keep_seconds: float = KEEP_SECONDS, batch: int = BATCH
) -> int | None:
    """Delete ended jobs (and their events) older than ``keep_seconds``, batch by batch.

    Args:
        sessions: The platform's (Postgres) sessions.
        keep_seconds: Ended jobs whose newest event is younger than this stay.
        batch: Most jobs deleted per transaction.

    Returns:
        How many jobs were deleted, or None when another process was pruning (it holds the lock).
    """
    deleted = 0
    while True:
        async with transaction(sessions) as session:
            if not await session.scalar(_TRY_LOCK, {"key": _LOCK}):
                return None if deleted == 0 else deleted
            result = await session.execute(_PRUNE, {"keep": keep_seconds, "batch": batch})
            count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < batch:
            if deleted:
                log.info("queue: pruned %d ended job(s) older than %g s", deleted, keep_seconds)
            return deleted
