"""Runs of a worker node that stopped answering: failed as ``WorkerLost``, naming the node.

Each ``bifrost worker`` node is a procrastinate worker that beats its heartbeat into
``procrastinate_workers`` every ``BIFROST_NODE_HEARTBEAT_SECONDS``. A job still ``doing`` whose worker
is silent for ``BIFROST_NODE_LOST_SECONDS`` (or was pruned) belonged to a node that died (kill -9, a
lost machine). Every server and node sweeps for those jobs: a run the node had started ends
``Failed`` (``WorkerLost``); one it had taken but not started is still ``Pending`` and gets a fresh job,
so another node runs it. Jobs still queued were never any node's: they simply stay queued. The same
loop prunes the queue's ended jobs (:mod:`app.engine.job_pruning`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.engine.events import EventHub
from app.engine.job_pruning import KEEP_SECONDS, PRUNE_EVERY_SECONDS, prune_finished_jobs
from app.engine.queue_schema import DONE_CHANNEL, RECONCILE, TASK
from app.models import Execution
from app.services.executions.service import ExecutionService
from bifrost.enums import ExecutionStatus

log = logging.getLogger(__name__)

# SKIP LOCKED: two sweepers at once each take different jobs, never the same one twice.
_STALLED = text(
    """
    SELECT j.id, j.args->>'execution_id' AS execution_id
      FROM procrastinate_jobs j
      LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
     WHERE j.status = 'doing' AND j.task_name = :task
       AND (w.id IS NULL OR w.last_heartbeat < NOW() - make_interval(secs => :lost))
       FOR UPDATE OF j SKIP LOCKED
    """
)
_FAIL_JOB = text("SELECT procrastinate_finish_job_v1(:job_id, 'failed', false)")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def sweep_lost_nodes(sessions: async_sessionmaker[AsyncSession], hub: EventHub, lost_seconds: float) -> list[str]:
    """Fail the runs of lost nodes and re-queue what they took but never started.

    Args:
        sessions: The platform's (Postgres) sessions.
        hub: Live events: viewers of a lost run see it end.
        lost_seconds: Heartbeat silence after which a node counts as lost.

    Returns:
        The ids of the runs failed as ``WorkerLost``.
    """
    failed: list[str] = []
    async with transaction(sessions) as session:
        stalled = (await session.execute(_STALLED, {"task": TASK, "lost": lost_seconds})).all()
        if not stalled:
            return failed
        service = ExecutionService(session)
        for job_id, execution_id in stalled:
            row = (
                await session.execute(
                    select(col(Execution.status), col(Execution.node)).where(col(Execution.id) == execution_id)
                )
            ).first()
            if row is not None and row[0] == ExecutionStatus.RUNNING.value:
                node = row[1] or "unknown"
                await service.finish(
                    execution_id,
                    status=ExecutionStatus.FAILED.value,
                    error_message=(
                        f"Worker node {node} was lost while this run was running (no heartbeat for {lost_seconds:g} s)."
                    ),
                    error_type="WorkerLost",
                    user_error=True,
                )
                await session.execute(_NOTIFY, {"channel": DONE_CHANNEL, "payload": execution_id})
                failed.append(execution_id)
            await session.execute(_FAIL_JOB, {"job_id": job_id})
        # Runs still Pending whose job just failed get a new one (another node takes it).
        await session.execute(text(RECONCILE))
    for execution_id in failed:
        log.warning("execution %s: its worker node was lost; ended WorkerLost", execution_id)
        hub.publish(execution_id, {"type": "status", "status": "Failed", "done": True})
    return failed


class LostNodeSweeper:
    """Runs :func:`sweep_lost_nodes` every ``interval`` seconds in the background, and prunes the queue's
    ended jobs every ``prune_every`` seconds (:func:`~app.engine.job_pruning.prune_finished_jobs`: one
    process at a time, under an advisory lock), the first time at start.

    Args:
        sessions: The platform's (Postgres) sessions.
        hub: Live events.
        lost_seconds: Heartbeat silence after which a node counts as lost.
        interval: Seconds between sweeps.
        prune_every: Seconds between prunes of ended jobs.
        keep_seconds: Ended jobs younger than this stay.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: EventHub,
        lost_seconds: float,
        interval: float,
        *,
        prune_every: float = PRUNE_EVERY_SECONDS,
        keep_seconds: float = KEEP_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.lost_seconds = lost_seconds
        self.interval = interval
        self.prune_every = prune_every
        self.keep_seconds = keep_seconds
        self._next_prune = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping."""
        self._task = asyncio.create_task(self._loop(), name="bifrost-lost-nodes")

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= self._next_prune:
                self._next_prune = loop.time() + self.prune_every
                try:
                    await prune_finished_jobs(self.sessions, self.keep_seconds)
                except Exception:
                    log.exception("could not prune the queue's ended jobs; trying again later")
            await asyncio.sleep(self.interval)
            try:
                await sweep_lost_nodes(self.sessions, self.hub, self.lost_seconds)
            except Exception:
                log.exception("could not look for lost worker nodes; trying again later")
