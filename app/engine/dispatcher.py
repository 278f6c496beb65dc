"""Local dispatcher: runs PENDING executions on the warm worker pool and records the outcome.

This is the embedded implementation of :class:`app.services.executions.dispatch.Dispatcher`.
It owns the only links between the pool and the database: marking RUNNING,
creating the per-execution SDK token, buffering and storing logs, recording
results, and publishing live events.

Runs wait in the dispatcher's own queue while they are PENDING. A run is written
RUNNING only when a worker is reserved for it (in the same step its job is handed
to that worker), so after any stop of the server every PENDING row is a run that
never started and can safely run again, and every RUNNING row is one that did
(see "Runs across restarts" in docs/architecture.md). With ``runs_ahead_per_worker``
a busy worker also has its next run reserved ahead (see :meth:`LocalDispatcher.pump`).

A run ``AwaitingApproval`` is never handed here until an approver approves it (it is then
``Pending`` and dispatched like any other); the dispatcher only ends approvals that expired, at
start and every ``approval_check_seconds`` (docs/access.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime
from typing import Any, overload

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.engine.events import EventHub
from app.engine.group_commit import GroupCommitter, Outcome
from app.engine.pool import WorkerPool
from app.engine.protocol import NOT_STARTED, Job, JobResult, LogRecord, utcnow
from app.services import redaction
from app.services.executions.approval_rows import DEFAULT_APPROVAL_EXPIRY_SECONDS
from app.services.executions.approvals import ApprovalService
from app.services.executions.dispatch import DispatchRequest
from app.services.executions.log_limits import (
    DROPPED_LOGGER,
    LIMIT_LOGGER,
    MARKER_LEVEL,
    Admission,
    LogLimits,
    LogTally,
    message_bytes,
)
from app.services.executions.service import ExecutionService, finish_write, mark_running_write
from app.services.identity import actor_cache
from app.services.identity.security import hash_token, new_execution_token

log = logging.getLogger(__name__)


@overload
def clean_text(text: str) -> str: ...
@overload
def clean_text(text: None) -> None: ...
def clean_text(text: str | None) -> str | None:
    """Replace what a database cannot store (lone surrogates from odd bytes, NUL) in captured text."""
    if text is None:
        return None
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")


def clean_json(value: Any) -> Any:
    """``value`` (a run's JSON result) with :func:`clean_text` applied to every string in it.

    A result holding a lone surrogate (undecodable bytes read by a workflow) would be stored, then
    break every JSON answer and live event that carries it.
    """
    if isinstance(value, str):
        return clean_text(value) if not value.isascii() else value
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    if isinstance(value, dict):
        return {clean_json(key): clean_json(item) for key, item in value.items()}
    return value


def clean_result(result: JobResult) -> JobResult:
    """``result`` with its value, error message and traceback safe to store, send and serialise."""
    cleaned = clean_json(result.result)
    message, trace = clean_text(result.error_message), clean_text(result.traceback)
    if cleaned == result.result and message == result.error_message and trace == result.traceback:
        return result  # the usual case: nothing to replace, no copy
    return dataclasses.replace(result, result=cleaned, error_message=message, traceback=trace)


def redact_secrets(result: JobResult) -> JobResult:
    """``result`` with every secret value its execution read masked (:mod:`app.services.redaction`)."""
    execution_id = result.execution_id
    if not redaction.active(execution_id):
        return result
    return dataclasses.replace(
        result,
        result=redaction.redact_json(execution_id, result.result),
        error_message=redaction.redact_text(execution_id, result.error_message),
        traceback=redaction.redact_text(execution_id, result.traceback),
    )


# Buffered log lines are written in batches of at most this many rows / message bytes.
_LOG_BATCH_ROWS = 1000
_LOG_BATCH_BYTES = 1024**2


def _batches(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``rows`` cut in order into batches of at most ``_LOG_BATCH_ROWS`` rows / ``_LOG_BATCH_BYTES`` (one row at least)."""
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = len(row["message"])
        if batch and (len(batch) >= _LOG_BATCH_ROWS or size + row_size > _LOG_BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        batches.append(batch)
    return batches


# How long a finished execution's completion event is kept for late waiters.
_DONE_RETENTION_SECONDS = 120.0
# After the database refused to mark queued runs RUNNING, wait this long before trying again.
_MARK_RETRY_SECONDS = 1.0
# How long stop() waits for runs ended by the pool to be recorded before it cancels their tasks.
_RECORD_GRACE_SECONDS = 10.0


async def expire_due_approvals(sessions: async_sessionmaker[AsyncSession], hub: EventHub) -> list[str]:
    """End approvals past their expiry now (their runs end Cancelled); returns their execution ids.

    Shared by both dispatchers: whichever runs the jobs, a server ends expired approvals.
    """
    async with transaction(sessions) as session:
        expired = await ApprovalService(session).expire_due()
    for execution_id in expired:
        hub.publish(execution_id, {"type": "status", "status": "Cancelled", "done": True})
    return expired


async def expire_approvals_every(seconds: float, sessions: async_sessionmaker[AsyncSession], hub: EventHub) -> None:
    """:func:`expire_due_approvals` now, then every ``seconds``, until cancelled."""
    while True:  # first at start: approvals that expired while no server ran end at once
        try:
            await expire_due_approvals(sessions, hub)
        except Exception:
            log.exception("could not end expired approvals; trying again later")
        await asyncio.sleep(seconds)


class LocalDispatcher:
    """Dispatches executions to a :class:`WorkerPool` in this process."""

    def __init__(
        self,
        pool: WorkerPool,
        sessions: async_sessionmaker[AsyncSession],
        hub: EventHub,
        sdk_url: str,
        log_flush_seconds: float = 1.0,
        log_limits: LogLimits | None = None,
        approval_expiry_seconds: float = DEFAULT_APPROVAL_EXPIRY_SECONDS,
        approval_check_seconds: float = 60.0,
        runs_ahead_per_worker: int = 0,
    ) -> None:
        self.pool = pool
        # Queued runs written RUNNING and handed to the pool ahead of a free worker, per worker (see pump).
        # 0 keeps "Runs across restarts" as documented: no run is RUNNING before a worker is free for it.
        self.runs_ahead_per_worker = runs_ahead_per_worker
        self.approval_expiry_seconds = approval_expiry_seconds
        self.approval_check_seconds = approval_check_seconds
        self._approvals: asyncio.Task[None] | None = None
        self.sessions = sessions
        # The result of a run and the hand-over of its worker to the next queued run share a commit.
        self.writes = GroupCommitter(sessions)
        self.hub = hub
        self.sdk_url = sdk_url
        self.log_flush_seconds = log_flush_seconds
        self.log_limits = log_limits or LogLimits()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._log_seq: dict[str, int] = {}
        self._log_buffer: dict[str, list[dict[str, Any]]] = {}
        self._log_tally: dict[str, LogTally] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._cancel_requested: set[str] = set()
        self._outcomes: dict[str, dict[str, Any]] = {}
        # Tokens of claimed runs not yet handed to the pool: each holds one idle worker.
        self._claims: set[str] = set()
        # PENDING runs waiting for a worker, oldest first (a dict: cancel removes one by id).
        self._queue: dict[str, DispatchRequest] = {}
        # Runs taken from the queue whose RUNNING write is in flight.
        self._marking: set[str] = set()
        self._accepting = True
        self._retry: asyncio.TimerHandle | None = None
        self._bookkeeping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the periodic log flusher (logs of long runs reach the database while they run)."""
        self._flusher = asyncio.create_task(self._flush_periodically(), name="bifrost-log-flusher")
        self._approvals = asyncio.create_task(self._expire_approvals_periodically(), name="bifrost-approval-expiry")

    async def expire_approvals(self) -> list[str]:
        """End approvals past their expiry now (their runs end Cancelled); returns their execution ids."""
        return await expire_due_approvals(self.sessions, self.hub)

    async def _expire_approvals_periodically(self) -> None:
        await expire_approvals_every(self.approval_check_seconds, self.sessions, self.hub)

    def stop_accepting(self) -> None:
        """Start no more runs: queued ones stay PENDING in the database for the next start."""
        self._accepting = False
        self._queue.clear()
        if self._retry is not None:
            self._retry.cancel()
        if self.runs_ahead_per_worker:
            # Runs taken ahead and not started yet: back to PENDING (their _run requeues them), not started
            # by a worker that finishes during the grace period.
            self.pool.drop_queued()

    @property
    def queued(self) -> int:
        """Runs waiting here for a worker."""
        return len(self._queue)

    async def stop(self) -> None:
        """Record what the stopped pool reported, then cancel in-flight bookkeeping tasks.

        Call after the pool has stopped (its owner stops it), so every running execution has an
        outcome (finished, or failed because the pool stopped) that is stored before the tasks go.
        """
        self.stop_accepting()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=_RECORD_GRACE_SECONDS)
        for periodic in (self._flusher, self._approvals):
            if periodic:
                periodic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await periodic
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.writes.close()  # its kept connections, before the platform disposes of the engine

    # ----- Dispatcher protocol -----------------------------------------------------------------
    def claim(self) -> str | None:
        """A token when a worker is free for one more run now (see ``Dispatcher.claim``)."""
        # Never ahead of queued runs, and never while shutting down (the run then stays PENDING).
        if self._queue or not self._accepting or self.pool.idle_count() <= len(self._claims):
            return None
        token = new_execution_token()
        self._claims.add(token)
        return token

    def release(self, token: str) -> None:
        """Give back an unused claim."""
        self._claims.discard(token)
        self.pump()

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start the execution (claimed: at once) or queue it until a worker is free; returns at once."""
        execution_id = request.execution_id
        self._done[execution_id] = asyncio.Event()
        if request.sdk_token is not None:
            self._start(request)
        elif self._accepting:
            self._queue[execution_id] = request
            self.pump()
        # else: shutting down; the row stays PENDING and the next start runs it.

    def _start(self, request: DispatchRequest) -> None:
        execution_id = request.execution_id
        self._tasks[execution_id] = asyncio.create_task(self._run(request), name=f"execution-{execution_id}")

    async def cancel(self, execution_id: str) -> bool:
        """Kill the worker running it; drop it from the queue (then False: the caller records the cancel)."""
        if self._queue.pop(execution_id, None) is not None:
            # Never started: the caller's own transaction writes it CANCELLED (False: "not running here").
            # A second transaction here would wait for the caller's connection (SQLite has one).
            self.hub.publish(execution_id, {"type": "status", "status": "Cancelled", "done": True})
            self._ended(execution_id)
            return False
        if execution_id not in self._tasks and execution_id not in self._marking:
            return False
        # Not yet handed to the pool (still being marked RUNNING)? The flag stops it before it runs.
        self._cancel_requested.add(execution_id)
        await self.pool.cancel(execution_id)
        return True

    async def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Wait for the end of an execution dispatched here; True if it ended (or is unknown here)."""
        event = self._done.get(execution_id)
        if event is None:
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ----- running -------------------------------------------------------------------------------
    async def _run(self, request: DispatchRequest) -> None:
        # Written RUNNING (with this token's hash) by the submit or by _mark: a worker is reserved.
        execution_id, token = request.execution_id, request.sdk_token
        assert token is not None
        try:
            self.hub.publish(execution_id, {"type": "status", "status": "Running"})
            job = Job(
                execution_id=execution_id,
                kind=request.kind,
                name=request.name,
                params=request.params,
                context=request.context,
                sdk_url=self.sdk_url,
                sdk_token=token,
                timeout_seconds=float(request.timeout_seconds),
            )
            if execution_id in self._cancel_requested:
                now = utcnow()
                result = JobResult(
                    execution_id=execution_id,
                    status="Cancelled",
                    error_message="Cancelled by user",
                    error_type="Cancelled",
                    user_error=True,
                    started_at=now,
                    completed_at=now,
                )
            else:
                # The claim ends when the pool takes the job (pool.run takes the idle worker synchronously).
                self._claims.discard(token)
                if self.pool.running and (self._accepting or not self.runs_ahead_per_worker or self.pool.idle_count()):
                    result = await self.pool.run(job)
                else:  # the server is stopping (or no worker is free for a run taken ahead): the next start runs it
                    result = JobResult(execution_id=execution_id, status="Failed", error_type=NOT_STARTED)
            if result.error_type == NOT_STARTED:
                # The pool stopped before a worker read the job: it never ran, so it runs after the next start.
                async with transaction(self.sessions) as session:
                    await ExecutionService(session).requeue(execution_id)
                return
            await self._record(result)
        except Exception:
            log.exception("execution %s: dispatcher failure", execution_id)
            with contextlib.suppress(Exception):
                async with transaction(self.sessions) as session:
                    await ExecutionService(session).finish(
                        execution_id,
                        status="Failed",
                        error_message="Internal dispatcher error",
                        error_type="DispatcherError",
                    )
            self.hub.publish(execution_id, {"type": "status", "status": "Failed", "done": True})
        finally:
            self._claims.discard(token)
            self._tasks.pop(execution_id, None)
            self._ended(execution_id)
            self.pump()

    def _ended(self, execution_id: str) -> None:
        self._cancel_requested.discard(execution_id)
        self._log_seq.pop(execution_id, None)
        self._log_tally.pop(execution_id, None)
        redaction.forget(execution_id)
        event = self._done.get(execution_id)
        if event is not None:
            event.set()
            asyncio.get_running_loop().call_later(_DONE_RETENTION_SECONDS, self._forget, execution_id)

    # ----- the queue -------------------------------------------------------------------------------
    def pump(self) -> None:
        """Start queued runs on the workers free now (also the pool's ``on_idle`` callback).

        The runs taken are written RUNNING together, in one transaction, and handed to the pool
        once that commits: a run is RUNNING in the database only once a worker is reserved for it.
        With ``runs_ahead_per_worker`` (``bifrost serve --runs-ahead``, 0 by default), that many more runs
        per worker are taken ahead: written RUNNING while the workers are busy, they wait in the pool's
        queue and the first worker that finishes takes the next at once, without waiting for a commit
        (on Postgres, the mark's WAL flush). Such a run is RUNNING before it started: after a crash of
        the server it is failed ``ServerRestarted`` and not run again (the safe side, as a batch marked
        and not yet handed over); after a stop (SIGTERM) the pool gives it back and it is ``Pending`` again.
        """
        if not self._accepting or not self._queue:
            return
        # Claimed tokens are runs on their way to the pool (being marked, or started and not yet taken).
        free = self.pool.size * (1 + self.runs_ahead_per_worker) - self.pool.load() - len(self._claims)
        if free <= 0:
            return
        batch: list[tuple[DispatchRequest, str]] = []
        while self._queue and len(batch) < free:
            execution_id = next(iter(self._queue))
            token = new_execution_token()
            self._claims.add(token)
            self._marking.add(execution_id)
            batch.append((self._queue.pop(execution_id), token))
        task = asyncio.create_task(self._mark(batch), name="bifrost-mark-running")
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)

    async def _mark(self, batch: list[tuple[DispatchRequest, str]]) -> None:
        marks = [(r.execution_id, hash_token(t)) for r, t in batch]
        try:
            if self.writes.one_statement:  # Postgres: one durable statement, with the outcomes waiting
                started = await self.writes.mark_running(marks)
            else:  # one UPDATE per run, in the next group commit
                started = [bool(n) for n in await self.writes.run(mark_running_write(marks))]
        except Exception:
            log.exception("could not mark %d queued execution(s) running; retrying", len(batch))
            for request, token in batch:
                self._claims.discard(token)
                self._marking.discard(request.execution_id)
            if self._accepting:
                # Back to the front of the queue, in their order, and try again shortly.
                self._queue = {**{r.execution_id: r for r, _ in batch}, **self._queue}
                self._retry = asyncio.get_running_loop().call_later(_MARK_RETRY_SECONDS, self.pump)
            return
        for (request, token), ok in zip(batch, started, strict=True):
            self._marking.discard(request.execution_id)
            if ok:
                self._start(dataclasses.replace(request, sdk_token=token))
            else:
                # Cancelled (or claimed elsewhere) before it started: tell live viewers it is over.
                self._claims.discard(token)
                self.hub.publish(request.execution_id, {"type": "status", "status": "Cancelled", "done": True})
                self._ended(request.execution_id)
        self.pump()

    def _forget(self, execution_id: str) -> None:
        self._done.pop(execution_id, None)
        self._outcomes.pop(execution_id, None)

    async def _record(self, result: JobResult) -> None:
        # Before anything is stored, kept for waiters or published: secrets it read become ***.
        result = redact_secrets(clean_result(result))
        self._log_dropped(result.execution_id)
        async with self._flush_lock:
            await self._store_result(result)
            # Dropped only once stored (under the lock, so the flusher cannot write them again).
            self._log_buffer.pop(result.execution_id, None)
        self.hub.publish(
            result.execution_id,
            {
                "type": "status",
                "status": result.status,
                "done": True,
                "error_message": result.error_message if result.user_error else None,
                "duration_ms": result.duration_ms,
            },
        )

    def outcome(self, execution_id: str) -> dict[str, Any] | None:
        """The fields stored when an execution dispatched here ended (kept briefly for waiters), or None."""
        return self._outcomes.get(execution_id)

    async def _store_result(self, result: JobResult) -> None:
        try:
            # A big log goes in batches first; its last batch is stored with the outcome.
            buffer = self._log_buffer.get(result.execution_id, [])
            batches = _batches(buffer)
            for batch in batches[:-1]:
                await self._write_logs(batch)
            rows = list(buffer)
            if await self._store_in_one_statement(result, rows):
                return
            if not rows and type(self)._finish is LocalDispatcher._finish:
                # No log lines: the outcome alone, a prepared write (SQLite runs such groups on sqlite3 itself).
                outcome = self._outcome_fields(result)
                write = finish_write(result.execution_id, **_finish_arguments(outcome))
                (stored,) = await self.writes.run(write, durable=False)
                if stored:
                    self._outcomes[result.execution_id] = outcome
                return

            async def store(session: AsyncSession) -> None:
                await ExecutionService(session).add_logs(rows)
                await self._finish(session, result)

            # An outcome may skip Postgres' WAL flush (group_commit.py: a database crash can lose it, never rerun it).
            await self.writes.run(store, durable=False)
        except Exception:
            # Never lose the outcome because of its logs: store it alone.
            log.exception(
                "execution %s: could not store its logs; storing the result without them", result.execution_id
            )
            async with transaction(self.sessions) as session:
                await self._finish(session, result)

    async def _store_in_one_statement(self, result: JobResult, rows: list[dict[str, Any]]) -> bool:
        """Postgres: the outcome and its last log lines in the group's one statement; False to take the session path.

        Only where :meth:`_finish` is this class's own: a subclass that writes more with the outcome (a worker
        node's NOTIFY) keeps its session path. A failed statement is logged and the session path tries again
        (its guard leaves an outcome that did land alone; log lines that did would fail there as duplicates
        and the outcome is then stored without them).
        """
        if not self.writes.one_statement or type(self)._finish is not LocalDispatcher._finish:
            return False
        outcome = self._outcome_fields(result)
        # Its SDK token ends with it: not cached again until the end has committed (no session here).
        actor_cache.forget_execution_now_and_after_commit(None, result.execution_id)  # type: ignore[arg-type]
        try:
            stored = await self.writes.finish(Outcome(execution_id=result.execution_id, **outcome, logs=rows))
        except Exception:
            log.warning(
                "execution %s: one-statement outcome failed; storing it in a session",
                result.execution_id,
                exc_info=True,
            )
            return False
        if stored:
            self._outcomes[result.execution_id] = outcome
        return True

    @staticmethod
    def _outcome_fields(result: JobResult) -> dict[str, Any]:
        """The columns a run's end writes (``ExecutionService.finish``'s arguments by column name)."""
        return {
            "status": result.status,
            "result": result.result,
            "error_message": clean_text(result.error_message),
            "error_type": result.error_type,
            "error_traceback": clean_text(result.traceback),
            "user_error": result.user_error,
            "started_at": result.started_at,
            "completed_at": result.completed_at,
            "duration_ms": result.duration_ms,
        }

    async def _finish(self, session: AsyncSession, result: JobResult) -> None:
        # What is written is also kept, so a waiting request can answer without reading it back.
        outcome = self._outcome_fields(result)
        stored = await ExecutionService(session).finish(result.execution_id, **_finish_arguments(outcome))
        if stored:
            self._outcomes[result.execution_id] = outcome

    # ----- logs ------------------------------------------------------------------------------------
    def on_log(self, record: LogRecord) -> None:
        """Pool callback: number, buffer and publish one captured log line (past the run's log cap: count it)."""
        execution_id = record.execution_id
        if execution_id is None:  # output of a worker between jobs: not part of any execution
            return
        tally = self._log_tally.get(execution_id)
        if tally is None:
            tally = self._log_tally[execution_id] = LogTally()
        elif tally.capped:  # neither stored nor streamed: _log_dropped reports how many
            tally.dropped += 1
            return
        # Redacted before it is buffered (stored) or published (streamed live).
        message = redaction.redact_text(execution_id, clean_text(record.message)) or ""
        admission = tally.admit(message_bytes(message), self.log_limits)
        if admission is Admission.STORE:
            self._append_log(
                execution_id, record.timestamp, clean_text(record.level), clean_text(record.logger), message
            )
        elif admission is Admission.LIMIT:
            self._append_log(
                execution_id, record.timestamp, MARKER_LEVEL, LIMIT_LOGGER, self.log_limits.limit_message()
            )

    def _append_log(self, execution_id: str, timestamp: datetime, level: str, logger: str, message: str) -> None:
        seq = self._log_seq.get(execution_id, -1) + 1
        self._log_seq[execution_id] = seq
        row = {
            "execution_id": execution_id,
            "seq": seq,
            "timestamp": timestamp,
            "level": level,
            "logger": logger,
            "message": message,
        }
        self._log_buffer.setdefault(execution_id, []).append(row)
        self.hub.publish(execution_id, {"type": "log", **row, "timestamp": timestamp.isoformat()})

    def _log_dropped(self, execution_id: str) -> None:
        """Before a run's outcome is stored: a last line counting what it logged past its cap."""
        tally = self._log_tally.get(execution_id)
        if tally is not None and tally.dropped:
            message = self.log_limits.dropped_message(tally.dropped)
            tally.dropped = 0
            self._append_log(execution_id, utcnow(), MARKER_LEVEL, DROPPED_LOGGER, message)

    def buffered_logs(self, execution_id: str) -> list[dict[str, Any]]:
        """Captured log lines of ``execution_id`` not yet written to the database (a copy)."""
        return list(self._log_buffer.get(execution_id, ()))

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.log_flush_seconds)
            try:
                await self._flush()
            except Exception:
                log.exception("could not store buffered log lines; they stay buffered")

    async def _flush(self) -> None:
        # Rows stay in the buffer until written, so a live viewer always finds every line in
        # the database or the buffer; the lock keeps _record from writing the same rows twice.
        async with self._flush_lock:
            for batch in _batches([row for rows in self._log_buffer.values() for row in rows]):
                await self._write_logs(batch)

    async def _write_logs(self, batch: list[dict[str, Any]]) -> None:
        """Store ``batch`` (the oldest buffered rows of its executions) and drop it from the buffers.

        One transaction per batch: a run that printed 40 MB within a flush period held the event
        loop (SQLite runs inline) for 180 ms when written in one.
        """
        async with transaction(self.sessions) as session:
            await ExecutionService(session).add_logs(batch)
        written: dict[str, int] = {}
        for row in batch:
            written[row["execution_id"]] = written.get(row["execution_id"], 0) + 1
        for execution_id, count in written.items():
            buffer = self._log_buffer.get(execution_id)
            if buffer is not None:
                del buffer[:count]
        # SQLite statements run inline and may never suspend: let other requests in between batches.
        await asyncio.sleep(0)


def _finish_arguments(outcome: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``ExecutionService.finish`` / ``finish_write`` for an outcome of ``_outcome_fields``."""
    arguments = {key: value for key, value in outcome.items() if key != "error_traceback"}
    arguments["traceback"] = outcome["error_traceback"]
    return arguments
