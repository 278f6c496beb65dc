"""``bifrost worker``: a worker node that takes runs from the Postgres queue and runs them on its own pool.

A node is a procrastinate worker (``BIFROST_QUEUE=postgres``, docs/deploy.md) whose one task,
``bifrost.run_execution``, hands a run to a :class:`NodeRunner`: the embedded :class:`LocalDispatcher`
itself (timeouts, cancel, logs and their limits, redaction, results, live events). Its Postgres work
per run is two statements (app/engine/node_statements.py): TAKE, procrastinate's fetch with the run's
``Running`` mark (this node's name, a fresh SDK token) and what the worker needs, committed durably
before the worker starts; FINISH, the outcome with its log lines, the job's deletion and the NOTIFY
that tells the servers the run ended. Workflow processes get only ``BIFROST_URL`` (the servers'
address, ``BIFROST_PUBLIC_URL``), never a database URL.

Nodes come and go while runs go on: procrastinate hands each job to one node; a node that stops
lets its running runs finish (``BIFROST_SHUTDOWN_GRACE_SECONDS``) and leaves queued ones to the
others; a node that dies is found by :mod:`app.engine.lost_nodes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory, upgrade_database_async
from app.engine import queue_trace
from app.engine.dispatcher import LocalDispatcher
from app.engine.event_backends import build_hub, unwire_cache_invalidation, wire_cache_invalidation
from app.engine.events import EventHub
from app.engine.lost_nodes import LostNodeSweeper
from app.engine.node_statements import FINISH, JOB_COLUMNS, context_of, finish_params, take
from app.engine.pg_listen import PgListener
from app.engine.pool import WorkerPool
from app.engine.protocol import JobResult, utcnow
from app.engine.queue_schema import (
    CANCEL_CHANNEL,
    DONE_CHANNEL,
    QUEUE,
    TASK,
    conninfo,
    done_payload,
    ensure_queue_schema,
)
from app.services.executions.dispatch import DispatchRequest
from app.services.executions.log_limits import LogLimits
from app.services.identity import actor_cache
from app.services.identity.security import hash_token, new_execution_token
from app.settings import Settings

log = logging.getLogger(__name__)

# Default concurrency of a node (BIFROST_WORKERS unset): automation runs mostly wait on remote APIs,
# so one run per core leaves a 2-core node idle while three technicians queue. A warm worker
# costs WORKER_MEMORY_MB (measured: ~45 MiB RSS each after importing the demo workspace; the
# figure leaves room for what runs allocate), so the count is capped by the memory free at start.
PROCESSES_PER_CORE = 8
WORKER_MEMORY_MB = 150
MAX_NODE_WORKERS = 64

# A run's log lines stored with its outcome in one statement (FINISH) up to this many rows and message
# characters (the embedded dispatcher's batch size); more take its path (batches, then the outcome).
_FINISH_MAX_LOG_ROWS = 1000
_FINISH_MAX_LOG_CHARACTERS = 1024**2
# How long a cancel for a run this node does not (yet) run is remembered: one may be asked while
# the run's TAKE is in flight, before this node knows the run is its own.
_CANCEL_MEMORY_SECONDS = 60.0
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def available_memory_mb() -> int | None:
    """``MemAvailable`` of this machine in MiB (None where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def default_node_workers(cpus: int | None = None, memory_mb: int | None = None) -> int:
    """Concurrent runs of a node when ``BIFROST_WORKERS`` is unset: 8 per core, capped by free memory.

    Args:
        cpus: CPU count (default: this machine's).
        memory_mb: Memory available (default: this machine's ``MemAvailable``).
    """
    cpus = cpus or os.cpu_count() or 1
    wanted = min(MAX_NODE_WORKERS, PROCESSES_PER_CORE * cpus)
    memory_mb = memory_mb if memory_mb is not None else available_memory_mb()
    if memory_mb is not None:
        wanted = min(wanted, memory_mb // WORKER_MEMORY_MB)
    return max(2, wanted)


def node_workers(settings: Settings) -> int:
    """A node's concurrency: ``BIFROST_WORKERS`` when set, else :func:`default_node_workers`."""
    return settings.workers if "workers" in settings.model_fields_set else default_node_workers()


async def _autocommit_connection(connection: Any) -> None:
    """Pool ``configure``: a job pool connection commits each statement (procrastinate's listener
    connection is opened with the pool's ``kwargs`` plus its own ``autocommit``, hence not there)."""
    await connection.set_autocommit(True)


def job_pool(conninfo: str, size: int) -> Any:
    """The node's pool for procrastinate and outcomes: autocommit, ``synchronous_commit`` off (not yet open)."""
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=size,
        open=False,
        name="bifrost-jobs",
        kwargs={"options": "-c synchronous_commit=off"},
        configure=_autocommit_connection,
    )


def take_pool(conninfo: str) -> Any:
    """The node's pool for :data:`~app.engine.node_statements.TAKE`: autocommit, durable commits (not yet open)."""
    from psycopg_pool import AsyncConnectionPool

    # Explicitly on: a database or role default of off must not make a Running mark losable.
    options = "-c synchronous_commit=on"
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=2,
        open=False,
        name="bifrost-take",
        kwargs={"options": options},
        configure=_autocommit_connection,
    )


def default_node_name() -> str:
    """``<hostname>-<pid>``: unique per process, and says where to look."""
    return f"{socket.gethostname()}-{os.getpid()}"


class NodeRunner(LocalDispatcher):
    """The embedded dispatcher, run by a node: its ends are also announced to every server.

    Args:
        *args: As :class:`LocalDispatcher`.
        **kwargs: As :class:`LocalDispatcher`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The node's psycopg pool (autocommit, synchronous_commit off) once open: outcomes go there in one statement.
        self.relaxed_pool: Any = None
        self.single_statement_finishes = 0  # outcomes stored by FINISH (tests read it)
        # The procrastinate job of each run taken here, and the jobs FINISH deleted (procrastinate's own
        # finish of those is skipped: WorkerNode._finish_job).
        self.job_ids: dict[str, int] = {}
        self.finished_jobs: set[int] = set()

    async def start(self) -> None:
        """Only the log flusher: approvals are the servers' business."""
        self._flusher = asyncio.create_task(self._flush_periodically(), name="bifrost-log-flusher")

    def runs(self, execution_id: str) -> bool:
        """Whether ``execution_id`` was handed to this runner and has not ended."""
        return execution_id in self._tasks

    async def _store_result(self, result: JobResult) -> None:
        """The outcome, its log lines and the servers' end NOTIFY in ONE autocommit statement.

        Where the base class takes five round trips (BEGIN, SET LOCAL synchronous_commit, UPDATE,
        NOTIFY, COMMIT). The connection has ``synchronous_commit`` off, as the base class's outcome
        transactions. Called under the flush lock (``_record``), so the periodic flusher cannot
        store the same log lines. Anything unusual (a long log, a failed statement) takes the base
        class's path, which tries again and stores the outcome alone if its logs fail.
        """
        queue_trace.mark(result.execution_id, "result")
        job_id = self.job_ids.pop(result.execution_id, None)
        rows = self._log_buffer.get(result.execution_id, [])
        too_long = len(rows) > _FINISH_MAX_LOG_ROWS or sum(len(r["message"]) for r in rows) > _FINISH_MAX_LOG_CHARACTERS
        if self.relaxed_pool is None or too_long:
            await super()._store_result(result)
            return
        outcome = self._outcome_fields(result)
        outcome["completed_at"] = outcome["completed_at"] or utcnow()  # as ExecutionService.finish stores it
        # Its SDK token ends with it: not cached again here until the end commits (the session is unused).
        actor_cache.forget_execution_now_and_after_commit(None, result.execution_id)  # type: ignore[arg-type]
        try:
            params = finish_params(result.execution_id, outcome, rows, done_payload(result.execution_id, outcome))
            async with self.relaxed_pool.connection() as connection:
                found = await (await connection.execute(FINISH, params)).fetchone()
        except Exception:
            log.warning(
                "execution %s: one-statement finish failed; storing it the usual way",
                result.execution_id,
                exc_info=True,
            )
            await super()._store_result(result)
            return
        self.single_statement_finishes += 1
        if job_id is not None:
            self.finished_jobs.add(job_id)
        queue_trace.mark(result.execution_id, "finished")
        if found is not None and found[0]:
            self._outcomes[result.execution_id] = outcome

    async def _finish(self, session: AsyncSession, result: JobResult) -> None:
        await super()._finish(session, result)
        # Delivered when this transaction commits: a server waiting for the run answers from it.
        payload = done_payload(result.execution_id, self._outcomes.get(result.execution_id))
        await session.execute(_NOTIFY, {"channel": DONE_CHANNEL, "payload": payload})


class WorkerNode:
    """A procrastinate worker feeding a warm :class:`WorkerPool`.

    Args:
        settings: Platform settings (``queue`` must be ``postgres``).
        sessions: Reuse these sessions (a server that also runs jobs); else the node opens its own.
        hub: Live events; a server running jobs passes its own.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        hub: EventHub | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.node_name or default_node_name()
        self.concurrency = node_workers(settings)
        self.conninfo = conninfo(settings.resolved_database_url)
        self.sdk_url = settings.resolved_public_url
        self._engine = None if sessions is not None else create_engine(settings.resolved_database_url)
        self.sessions = sessions if sessions is not None else session_factory(self._engine)  # type: ignore[arg-type]
        self._own_hub = hub is None
        # The servers' bus (BIFROST_EVENTS); a node serves no viewer, so it keeps no recent lines for late joiners.
        self.hub = hub if hub is not None else build_hub(settings, keep_recent_logs=False)
        self.pool = WorkerPool(
            settings.workspace,
            self.concurrency,
            env={"BIFROST_URL": self.sdk_url},
            user=settings.worker_user,
            local_files_root=settings.resolved_local_files_root,
            import_timeout=settings.import_timeout_seconds,
            memory_mb=settings.run_memory_mb,
        )
        self.runner = NodeRunner(
            self.pool,
            self.sessions,
            self.hub,
            self.sdk_url,
            settings.log_flush_seconds,
            log_limits=LogLimits(settings.log_max_lines, settings.log_max_bytes),
        )
        self.pool.on_log = self.runner.on_log
        self.pool.on_idle = self.runner.pump
        self.listener = PgListener(self.conninfo, {CANCEL_CHANNEL: self._on_cancel})
        self.sweeper = LostNodeSweeper(
            self.sessions, self.hub, settings.node_lost_seconds, settings.node_heartbeat_seconds
        )
        self.watcher: Any = None
        self._worker: Any = None
        self._worker_task: asyncio.Task[None] | None = None
        self._app: Any = None
        self._job_pool: Any = None
        self._take_pool: Any = None
        self._procrastinate_finish: Any = None
        # Runs this node took (TAKE) and has not yet handed to the runner: their requests, built from TAKE's row.
        self._taken: dict[str, DispatchRequest] = {}
        # Cancels asked for runs this node does not run (yet), with when they were asked (loop time).
        self._cancel_asked: dict[str, float] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.taken = 0  # runs this node wrote Running (tests and the bench read it)

    async def start(self, *, migrate: bool = True) -> None:
        """Apply migrations and the queue schema, warm the pool, listen for cancels, take jobs."""
        from procrastinate import App, PsycopgConnector
        from procrastinate.worker import Worker

        if migrate:
            await upgrade_database_async(self.settings.resolved_database_url)
        await ensure_queue_schema(self.settings.resolved_database_url)
        if self._own_hub:
            await self.hub.start()  # live events of runs here reach viewers on every server
            # A run's end expires its SDK token: servers that cached it drop it (app.services.cluster).
            wire_cache_invalidation(self.hub)
        scan = await self.pool.scan()  # files that end or hang an import are skipped, as on servers
        self.pool.skip = tuple(scan.skip)
        await self.pool.start()
        await self.runner.start()
        await self.listener.start()
        self.sweeper.start()
        if self.settings.watch_workspace:
            from app.engine.watcher import WorkspaceWatcher

            self.watcher = WorkspaceWatcher(self.settings.workspace, self._on_workspace_change)
            await self.watcher.start()
        # Our own pools, because procrastinate's checks each connection with a round trip before every
        # statement; a connection the database dropped fails one statement, which is tried again.
        # Autocommit: a statement is its own transaction, without BEGIN and COMMIT round trips.
        # The job pool (procrastinate's statements: finish, heartbeat, stalled jobs; and our outcomes)
        # does not wait for the WAL flush: a lost finish leaves the job of an ended run ``doing``,
        # never run again as the run is no longer Pending; a lost outcome is docs/architecture.md's
        # "what a crash may cost". The take pool (TAKE: the fetch and the Running mark in one
        # transaction) keeps synchronous_commit on: a run is Running on disk before a worker starts it.
        self._job_pool = job_pool(self.conninfo, min(10, 2 + self.concurrency))
        self._take_pool = take_pool(self.conninfo)
        await self._take_pool.open(wait=True)
        await self._job_pool.open(wait=True)
        self.runner.relaxed_pool = self._job_pool
        self._app = App(connector=PsycopgConnector())
        self._app.task(name=TASK, queue=QUEUE)(self._run_execution)
        await self._app.open_async(self._job_pool)
        self._worker = Worker(
            self._app,
            queues=[QUEUE],
            name=self.name,
            concurrency=self.concurrency,
            install_signal_handlers=False,
            update_heartbeat_interval=self.settings.node_heartbeat_seconds,
            stalled_worker_timeout=self.settings.node_lost_seconds,
            delete_jobs="successful",
            shutdown_graceful_timeout=self.settings.shutdown_grace_seconds,
        )
        self._app.job_manager.fetch_job = self._fetch_and_take
        self._procrastinate_finish = self._app.job_manager.finish_job
        self._app.job_manager.finish_job = self._finish_job
        self._fetch_when_useful(self._worker, self._app.job_manager)
        self._worker_task = asyncio.create_task(self._worker.run(), name="bifrost-node-worker")
        log.info("worker node %s: taking runs, %d at a time", self.name, self.concurrency)

    async def wait_stopped(self) -> None:
        """Return when the procrastinate worker has stopped (after :meth:`stop`, or when it failed)."""
        if self._worker_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task

    async def stop(self) -> None:
        """Take no more jobs; let running runs finish for ``shutdown_grace_seconds``, then end them."""
        if self._worker is not None:
            self._worker.stop()  # waits for running jobs up to the grace period, then cancels them
            await self.wait_stopped()
        self.runner.stop_accepting()
        await self.pool.stop(timeout=0.0)
        await self.runner.stop()  # records what the pool reported for the runs it ended
        if self.watcher:
            await self.watcher.stop()
        await self.sweeper.stop()
        await self.listener.stop()
        if self._own_hub:
            unwire_cache_invalidation(self.hub)
            await self.hub.stop()  # after the last status events went out
        if self._app is not None:
            await self._app.close_async()
        if self._job_pool is not None:
            self.runner.relaxed_pool = None
            await self._job_pool.close()
        if self._take_pool is not None:
            await self._take_pool.close()
        if self._engine is not None:
            await self._engine.dispose()

    def _fetch_when_useful(self, worker: Any, job_manager: Any) -> None:
        """After a job, fetch again only when a job may be waiting (:class:`FetchPolicy`)."""
        policy = FetchPolicy(job_manager.fetch_job)
        notified = worker._handle_notification

        async def on_notification(*, channel: str, notification: Any) -> None:
            if notification.get("type") == "job_inserted":
                policy.announced_one()
            await notified(channel=channel, notification=notification)

        worker._handle_notification = on_notification
        job_manager.fetch_job = policy.fetch

    # ----- one job -------------------------------------------------------------------------------------
    async def _fetch_and_take(self, queues: Any, worker_id: int) -> Any:
        """procrastinate's ``fetch_job``, and the run of the job it finds marked ``Running`` here (TAKE).

        Returns the procrastinate job (None when there is none). The run's dispatch request waits in
        ``_taken`` for :meth:`_run_execution`; a job whose run is no longer ``Pending`` (cancelled
        while queued, or taken before a crash) leaves nothing there and ends at once.
        """
        from procrastinate.jobs import Job
        from psycopg.rows import dict_row

        sent = time.time()
        token = new_execution_token()
        params = {
            "queues": list(queues) if queues is not None else None,
            "worker_id": worker_id,
            "started_at": utcnow(),
            "token_hash": hash_token(token),
            "node": self.name,
        }
        async with self._take_pool.connection() as connection:
            connection.row_factory = dict_row
            row = await take(connection, params)
        if row is None:
            return None
        if row["run_id"] is not None:
            if queue_trace.enabled():
                queue_trace.mark(row["run_id"], "take", sent)
                queue_trace.mark(row["run_id"], "taken")
            self.taken += 1
            self.runner.job_ids[row["run_id"]] = row["id"]
            self._taken[row["run_id"]] = DispatchRequest(
                execution_id=row["run_id"],
                kind=row["run_kind"],
                name=row["run_workflow_name"],
                params=row["run_input_data"],
                timeout_seconds=row["run_timeout_seconds"],
                context=context_of(row),
                sdk_token=token,
            )
        return Job.from_row({column: row[column] for column in JOB_COLUMNS})

    async def _finish_job(self, job: Any, status: Any, delete_job: bool) -> None:
        """procrastinate's ``finish_job``, skipped for a job its run's FINISH already deleted."""
        if job.id in self.runner.finished_jobs:
            self.runner.finished_jobs.discard(job.id)
            return
        await self._procrastinate_finish(job=job, status=status, delete_job=delete_job)

    async def _run_execution(self, execution_id: str) -> None:
        """The procrastinate task: run ``execution_id``, which its fetch (TAKE) marked ``Running`` here."""
        request = self._taken.pop(execution_id, None)
        if request is None:
            return  # cancelled while queued, or already taken: nothing to run
        await self.runner.dispatch(request)  # the runner knows it from here on (runs())
        queue_trace.mark(execution_id, "dispatched")
        try:
            if self._cancel_asked.pop(execution_id, None) is not None:
                await self.runner.cancel(execution_id)
            await self.runner.wait(execution_id)
        finally:
            self.runner.job_ids.pop(execution_id, None)  # not stored by FINISH (requeued, or a failure)

    def _on_cancel(self, execution_id: str) -> None:
        if not self.runner.runs(execution_id):
            # Not running here, or not yet: its TAKE may be in flight. Acted on if it gets handed over.
            now = asyncio.get_running_loop().time()
            self._cancel_asked[execution_id] = now
            for asked, when in list(self._cancel_asked.items()):  # oldest first
                if now - when < _CANCEL_MEMORY_SECONDS:
                    break
                del self._cancel_asked[asked]
            return
        task = asyncio.create_task(self.runner.cancel(execution_id), name=f"cancel-{execution_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_workspace_change(self) -> None:
        scan = await self.pool.scan()
        self.pool.skip = tuple(scan.skip)
        self.pool.reload()


class FetchPolicy:
    """When a node's procrastinate worker fetches again right after a job.

    procrastinate fetches again the moment it gets a job, until a fetch comes back empty: with one
    run at a time every run cost a second, empty fetch, which raced the run's mark and context reads
    (two connections, one event loop, 2 cores). Each job inserted is announced (procrastinate's
    ``job_inserted`` NOTIFY), so after a job the next fetch is made only while announcements not yet
    matched by a fetched job remain.

    Announcements count only the jobs queued while the node listens: a backlog queued before it
    started, or a job found by procrastinate's polling after a missed announcement, was never
    counted. So until a fetch comes back empty (start-up), and again whenever a fetch finds a job no
    announcement accounted for, the node fetches after every job as procrastinate does: without
    this, a node started on a backlog took one run per polling interval (5 s).
    """

    def __init__(self, fetch: Callable[..., Awaitable[Any]]) -> None:
        self._fetch = fetch
        self._announced = 0  # jobs announced and not yet matched by a fetched job
        self._after_job = False  # the coming fetch is procrastinate's immediate re-fetch after a job
        self._backlog = True  # jobs may wait that no announcement counted (unknown until an empty fetch)

    def announced_one(self) -> None:
        """A ``job_inserted`` notification arrived."""
        self._announced += 1

    async def fetch(self, **kwargs: Any) -> Any:
        """procrastinate's ``fetch_job``, skipped (None) right after a job when nothing can be waiting."""
        if self._after_job and self._announced <= 0 and not self._backlog:
            self._after_job = False
            return None  # nothing announced since: the queue is most likely empty
        announced = self._announced
        job = await self._fetch(**kwargs)
        self._after_job = job is not None
        if job is None:
            self._announced -= announced  # those were taken elsewhere; keep what came meanwhile
            self._backlog = False  # the queue was empty: from now on the announcements count what waits
        else:
            if announced <= 0:
                self._backlog = True  # a job nobody announced (queued before start, or a missed NOTIFY)
            self._announced = max(0, self._announced - 1)
        return job
