"""``bifrost worker``: a worker node that takes runs from the Postgres queue and runs them on its own pool.

A node is a procrastinate worker (``BIFROST_QUEUE=postgres``, docs/deploy.md) whose one task,
``bifrost.run_execution``, writes the run ``Running`` with this node's name and a fresh SDK token, and
hands it to a :class:`NodeRunner`: the embedded :class:`LocalDispatcher` itself (timeouts, cancel,
logs and their limits, redaction, results, live events), which also tells the servers through a
NOTIFY, in the transaction that stores the outcome, that the run ended. Workflow processes get only
``BIFROST_URL`` (the servers' address, ``BIFROST_PUBLIC_URL``), never a database URL.

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
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from app.db import create_engine, session_factory, upgrade_database_async
from app.engine.dispatcher import LocalDispatcher
from app.engine.event_backends import build_hub, unwire_cache_invalidation, wire_cache_invalidation
from app.engine.events import EventHub
from app.engine.lost_nodes import LostNodeSweeper
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
from app.models import Execution
from app.models.base import UTCDateTime
from app.services.executions.log_limits import LogLimits
from app.services.executions.service import ExecutionService
from app.services.identity.security import hash_token, new_execution_token
from app.settings import Settings
from bifrost.enums import ExecutionStatus

log = logging.getLogger(__name__)

# Default concurrency of a node (BIFROST_WORKERS unset): automation runs mostly wait on remote APIs,
# so one run per core leaves a 2-core node idle while three technicians queue. A warm worker
# costs WORKER_MEMORY_MB (measured: ~45 MiB RSS each after importing the demo workspace; the
# figure leaves room for what runs allocate), so the count is capped by the memory free at start.
PROCESSES_PER_CORE = 8
WORKER_MEMORY_MB = 150
MAX_NODE_WORKERS = 64

_MARK_TAKEN = (
    update(Execution)
    .where(col(Execution.id) == bindparam("b_id"), col(Execution.status) == ExecutionStatus.PENDING.value)
    .values(
        status=ExecutionStatus.RUNNING.value,
        started_at=bindparam("b_started_at", type_=UTCDateTime()),
        sdk_token_hash=bindparam("b_token_hash"),
        node=bindparam("b_node"),
    )
    .returning(Execution)
)
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


def default_node_name() -> str:
    """``<hostname>-<pid>``: unique per process, and says where to look."""
    return f"{socket.gethostname()}-{os.getpid()}"


class NodeRunner(LocalDispatcher):
    """The embedded dispatcher, run by a node: its ends are also announced to every server."""

    async def start(self) -> None:
        """Only the log flusher: approvals are the servers' business."""
        self._flusher = asyncio.create_task(self._flush_periodically(), name="bifrost-log-flusher")

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
        self.hub = hub if hub is not None else build_hub(settings)  # the servers' bus (BIFROST_EVENTS)
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
        # Runs between their job's fetch and their hand-over to the runner, and cancels asked meanwhile.
        self._starting: set[str] = set()
        self._cancel_asked: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.taken = 0  # runs this node wrote Running (tests and the bench read it)

    async def start(self, *, migrate: bool = True) -> None:
        """Apply migrations and the queue schema, warm the pool, listen for cancels, take jobs."""
        from procrastinate import App, PsycopgConnector
        from procrastinate.worker import Worker
        from psycopg_pool import AsyncConnectionPool

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
        # A few connections suffice: fetching and finishing a job are one short statement each. Our own
        # pool, because procrastinate's checks each connection with a round trip before every statement
        # (two more per run); a connection the database dropped fails one fetch, which is tried again.
        # Autocommit: a fetch or a finish is one statement (a function call), without BEGIN and COMMIT
        # round trips. Its commits do not wait for the WAL flush either: the run's durable Running
        # mark, committed next, flushes the fetch with it (the WAL is written in order), so a crash of
        # Postgres loses either both (the job is todo again, the run Pending) or neither. A lost finish
        # leaves the job of an ended run ``doing``: never run again, as the run is no longer Pending.
        self._job_pool = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=min(10, 2 + self.concurrency),
            open=False,
            name="bifrost-jobs",
            kwargs={"options": "-c synchronous_commit=off"},
            configure=_autocommit_connection,
        )
        await self._job_pool.open(wait=True)
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
            await self._job_pool.close()
        if self._engine is not None:
            await self._engine.dispose()

    def _fetch_when_useful(self, worker: Any, job_manager: Any) -> None:
        """After a job, fetch again only when a job may be waiting.

        procrastinate fetches again the moment it gets a job, until a fetch comes back empty: with one
        run at a time every run cost a second, empty fetch, which raced the run's mark and context
        reads (two connections, one event loop, 2 cores). Each job inserted is announced (procrastinate's
        ``job_inserted`` NOTIFY): after a job, the next fetch is made only while announcements not yet
        matched by a fetched job remain. A missed announcement costs what it cost before:
        procrastinate's polling fetches anyway.
        """
        fetch, notified = job_manager.fetch_job, worker._handle_notification
        state = {"announced": 0, "after_job": False}

        async def on_notification(*, channel: str, notification: Any) -> None:
            if notification.get("type") == "job_inserted":
                state["announced"] += 1
            await notified(channel=channel, notification=notification)

        async def fetch_when_useful(**kwargs: Any) -> Any:
            if state["after_job"] and state["announced"] <= 0:
                state["after_job"] = False
                return None  # nothing announced since: the queue is most likely empty
            announced = state["announced"]
            job = await fetch(**kwargs)
            state["after_job"] = job is not None
            if job is None:
                state["announced"] -= announced  # those were taken elsewhere; keep what came meanwhile
            else:
                state["announced"] = max(0, state["announced"] - 1)
            return job

        worker._handle_notification = on_notification
        job_manager.fetch_job = fetch_when_useful

    # ----- one job -------------------------------------------------------------------------------------
    async def _run_execution(self, execution_id: str) -> None:
        """The procrastinate task: run ``execution_id`` here if it is still ``Pending``."""
        self._starting.add(execution_id)
        try:
            token = new_execution_token()
            async with self._autocommit() as session:
                # One statement marks the run taken and reads it back (ORM-enabled UPDATE ... RETURNING),
                # outside a transaction: no BEGIN and COMMIT round trips on every run's way to a worker.
                marked = await session.execute(
                    select(Execution).from_statement(_MARK_TAKEN),
                    {
                        "b_id": execution_id,
                        "b_started_at": utcnow(),
                        "b_token_hash": hash_token(token),
                        "b_node": self.name,
                    },
                )
                execution = marked.scalar_one_or_none()
                if execution is None:
                    return  # cancelled while queued, or already taken: nothing to run
                request = await ExecutionService(session).dispatch_request(execution, sdk_token=token)
            self.taken += 1
            await self.runner.dispatch(request)
        finally:
            self._starting.discard(execution_id)
        if execution_id in self._cancel_asked:
            self._cancel_asked.discard(execution_id)
            await self.runner.cancel(execution_id)
        await self.runner.wait(execution_id)

    @contextlib.asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements commit one by one (the mark is one atomic UPDATE)."""
        engine = self.sessions.kw["bind"]
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                yield session

    def _on_cancel(self, execution_id: str) -> None:
        if execution_id in self._starting:
            self._cancel_asked.add(execution_id)  # acted on once it is handed to the runner
            return
        task = asyncio.create_task(self.runner.cancel(execution_id), name=f"cancel-{execution_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _on_workspace_change(self) -> None:
        scan = await self.pool.scan()
        self.pool.skip = tuple(scan.skip)
        self.pool.reload()
