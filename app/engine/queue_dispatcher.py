"""Queue dispatcher: the ``Dispatcher`` of a server when runs go to ``bifrost worker`` nodes.

With ``BIFROST_QUEUE=postgres`` a server runs nothing itself (unless ``BIFROST_SERVE_RUNS_JOBS``):
the submit writes the run ``Pending`` exactly as with the embedded pool, and the row's trigger
(:mod:`app.engine.queue_schema`) defers its procrastinate job in that same transaction, so
:meth:`QueueDispatcher.dispatch` has nothing left to send. Ends are learnt from a NOTIFY the node
sends in the transaction that stores the outcome, with a poll of the row as the fallback; cancels
go out as a NOTIFY that the node running the run acts on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import transaction
from app.engine import queue_trace
from app.engine.dispatcher import expire_approvals_every, expire_due_approvals
from app.engine.events import EventHub
from app.engine.pg_listen import PgListener
from app.engine.queue_schema import CANCEL_CHANNEL, DONE_CHANNEL, parse_done
from app.models import Execution
from app.services.executions.approval_rows import DEFAULT_APPROVAL_EXPIRY_SECONDS
from app.services.executions.dispatch import DispatchRequest
from bifrost.enums import ExecutionStatus

log = logging.getLogger(__name__)

_ENDED = {ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value}
# How long an outcome a node announced is kept for the requests waiting for it.
_OUTCOME_RETENTION_SECONDS = 120.0
# Ends announced while nobody here waited, newest last: a wait that starts just after the run's end
# (a very fast run) finds it here instead of missing its NOTIFY. Ids only, a bounded number; the
# same bound for the runs this server just wrote Pending (dispatch) and has not waited for yet.
_RECENT = 10_000
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class QueueDispatcher:
    """Dispatcher of a server whose runs are procrastinate jobs taken by worker nodes.

    Args:
        sessions: The platform's sessions (Postgres).
        hub: Live events (part of the cluster-wide hub when configured).
        conninfo: libpq string of the same database, for the LISTEN connection.
        approval_expiry_seconds: How long a run ``AwaitingApproval`` waits.
        approval_check_seconds: How often expired approvals are ended.
        poll_seconds: A waiter reads the row at least this often (a NOTIFY lost with a dropped
            connection then costs at most this long).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: EventHub,
        conninfo: str,
        approval_expiry_seconds: float = DEFAULT_APPROVAL_EXPIRY_SECONDS,
        approval_check_seconds: float = 60.0,
        poll_seconds: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.approval_expiry_seconds = approval_expiry_seconds
        self.approval_check_seconds = approval_check_seconds
        self.poll_seconds = poll_seconds
        self.listener = PgListener(conninfo, {DONE_CHANNEL: self._on_done})
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._outcomes: dict[str, dict[str, Any]] = {}
        self._recent_ends: dict[str, None] = {}
        self._fresh: dict[str, None] = {}
        self._approvals: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen for ended runs and start ending expired approvals."""
        await self.listener.start()
        self._approvals = asyncio.create_task(
            expire_approvals_every(self.approval_check_seconds, self.sessions, self.hub), name="bifrost-approval-expiry"
        )

    def stop_accepting(self) -> None:
        """Nothing to stop: runs queue in the database whatever this server does."""

    @property
    def queued(self) -> int:
        """Runs waiting here: none (they wait in the database)."""
        return 0

    async def stop(self) -> None:
        """Stop listening and the approval expiry."""
        if self._approvals is not None:
            self._approvals.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._approvals
        await self.listener.stop()
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    # ----- Dispatcher protocol -----------------------------------------------------------------
    def claim(self) -> str | None:
        """Never: a run is written ``Pending`` so that its trigger queues its job."""
        return None

    def release(self, token: str) -> None:
        """Nothing was claimed."""

    async def dispatch(self, request: DispatchRequest) -> None:
        """Nothing to send: the ``Pending`` row's trigger deferred the job in the submit's transaction.

        The run is remembered as just written ``Pending`` here: a wait for it need not read its row first.
        """
        queue_trace.mark(request.execution_id, "committed")
        _remember(self._fresh, request.execution_id)

    async def cancel(self, execution_id: str) -> bool:
        """Tell every node to stop the run; True when it is running (its node records the cancel).

        A queued run (False) is written ``Cancelled`` by the caller; a node that takes its job later
        finds it no longer ``Pending`` and drops it. The NOTIFY goes out in both cases: a node may
        be starting it at this very moment.
        """
        async with transaction(self.sessions) as session:
            status = await session.scalar(select(col(Execution.status)).where(col(Execution.id) == execution_id))
            await session.execute(_NOTIFY, {"channel": CANCEL_CHANNEL, "payload": execution_id})
        return status == ExecutionStatus.RUNNING.value

    async def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Wait until the run has ended on whichever node; False on timeout (True for an unknown id).

        For a run this server just wrote ``Pending`` (``dispatch``) while the LISTEN connection is up,
        the end's NOTIFY is what ends the wait: the row is read only every ``poll_seconds`` (a NOTIFY
        lost with a dropped connection). Otherwise the row is read first, then as often. Saves a read
        per ``?wait=true`` call (a round trip and some of this server's CPU).
        """
        queue_trace.mark(execution_id, "wait")
        event = asyncio.Event()
        self._waiters.setdefault(execution_id, set()).add(event)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # Listening before reading: an end notified in between is not missed. A run this server just
        # wrote Pending ends with a NOTIFY (or is in _recent_ends): no need to read it, unless not listening.
        fresh = self._fresh.pop(execution_id, 0) is None
        read_first = not (fresh and self.listener.connected.is_set())
        try:
            while True:
                if execution_id in self._recent_ends:
                    return True
                if read_first and await self._has_ended(execution_id):
                    return True
                read_first = True
                remaining = self.poll_seconds if deadline is None else min(self.poll_seconds, deadline - loop.time())
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
                    return True
        finally:
            waiters = self._waiters.get(execution_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[execution_id]

    def outcome(self, execution_id: str) -> dict[str, Any] | None:
        """The outcome a node stored, as its NOTIFY said while someone waited here (briefly kept), or None."""
        return self._outcomes.get(execution_id)

    def buffered_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """None here: nodes write log lines to the database every ``BIFROST_LOG_FLUSH_SECONDS``."""
        return []

    # ----- internals ---------------------------------------------------------------------------------
    def _on_done(self, payload: str) -> None:
        execution_id, outcome = parse_done(payload)
        queue_trace.mark(execution_id, "done")
        waiters = self._waiters.get(execution_id)
        if not waiters:
            _remember(self._recent_ends, execution_id)
            return
        if outcome is not None:  # kept briefly for the waiters, like the embedded dispatcher's
            self._outcomes[execution_id] = outcome
            asyncio.get_running_loop().call_later(_OUTCOME_RETENTION_SECONDS, self._outcomes.pop, execution_id, None)
        for event in waiters:
            event.set()

    async def _has_ended(self, execution_id: str) -> bool:
        # Autocommit: one round trip, where a session's read costs three (BEGIN, SELECT, ROLLBACK).
        engine = self.sessions.kw["bind"]
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            status = await connection.scalar(select(col(Execution.status)).where(col(Execution.id) == execution_id))
        return status is None or status in _ENDED

    async def expire_approvals(self) -> list[str]:
        """End approvals past their expiry now (their runs end Cancelled); returns their execution ids."""
        return await expire_due_approvals(self.sessions, self.hub)


def _remember(recent: dict[str, None], execution_id: str) -> None:
    """Add ``execution_id`` as the newest of ``recent``, dropping the oldest past :data:`_RECENT`."""
    recent[execution_id] = None
    if len(recent) > _RECENT:
        del recent[next(iter(recent))]
