"""The running platform: database, worker pool, dispatcher, workspace sync and watcher, wired together.

``bifrost serve`` and the tests create one :class:`Platform` and start it
inside the web app's lifespan; ``bifrost run`` uses the same object.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, session_factory, transaction, upgrade_database_async
from app.engine.dispatcher import LocalDispatcher
from app.engine.event_backends import build_hub, unwire_cache_invalidation, wire_cache_invalidation
from app.engine.lost_nodes import LostNodeSweeper, sweep_lost_nodes
from app.engine.node import WorkerNode
from app.engine.pool import WorkerPool
from app.engine.queue_dispatcher import QueueDispatcher
from app.engine.queue_schema import conninfo, ensure_queue_schema
from app.engine.scheduler import Scheduler
from app.services.audit.retention import AuditPruner
from app.services.executions.log_limits import LogLimits
from app.services.executions.retention import ExecutionPruner
from app.services.executions.schedules import ScheduleService
from app.services.executions.service import ExecutionService
from app.services.files.service import FileService
from app.services.integrations.oauth_tokens import TokenManager, TokenRefresher
from app.services.knowledge.jobs import KnowledgeJobs
from app.services.knowledge.service import KnowledgeRuntime
from app.services.secrets import secret_box
from app.services.workflows.catalogue import WorkflowService
from app.settings import Settings

log = logging.getLogger(__name__)

_SYNC_LOCK = 0x62696672_73796E63  # pg_advisory_xact_lock key of the workspace sync ("bifrsync")


class Platform:
    """Owns the long-lived parts of a server process.

    Args:
        settings: Platform settings.
        sdk_url: The URL workers use to reach ``/api/sdk/v1`` (this server's address).
    """

    def __init__(self, settings: Settings, sdk_url: str | None = None) -> None:
        self.settings = settings
        self.sdk_url = (sdk_url or settings.resolved_public_url).rstrip("/")
        self.engine: AsyncEngine = create_engine(settings.resolved_database_url)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.hub = build_hub(settings)  # in-process, or Postgres/Redis across servers (BIFROST_EVENTS)
        settings.workspace.mkdir(parents=True, exist_ok=True)
        settings.home.mkdir(parents=True, exist_ok=True)
        # The home holds the SQLite file and keys: only the server's user may enter it.
        settings.home.chmod(0o700)
        self.files = FileService.from_settings(settings)  # bifrost.files' object store and temp cleanup
        # Knowledge: embedder and vector cache (loaded lazily), background ingestion and re-embedding.
        self.knowledge = KnowledgeRuntime(settings)
        self.knowledge_jobs = KnowledgeJobs(self.sessions, self.knowledge)
        # Workers get only the SDK URL: the pool strips every other BIFROST_* variable and database
        # credentials from their environment, so they reach the platform only through the SDK API.
        self.pool = WorkerPool(
            settings.workspace,
            settings.workers,
            env={"BIFROST_URL": self.sdk_url},
            user=settings.worker_user,
            local_files_root=settings.resolved_local_files_root,  # bifrost.files local mode, never the workspace
            import_timeout=settings.import_timeout_seconds,
            memory_mb=settings.run_memory_mb,
        )
        # BIFROST_QUEUE=postgres: runs are jobs in the database, run by `bifrost worker` nodes
        # (docs/deploy.md); this server's own pool then only scans the workspace.
        self.queue_mode = settings.queue == "postgres"
        self.dispatcher: LocalDispatcher | QueueDispatcher
        self.node: WorkerNode | None = None
        self.lost_nodes: LostNodeSweeper | None = None
        if self.queue_mode:
            self.dispatcher = QueueDispatcher(
                self.sessions,
                self.hub,
                conninfo(settings.resolved_database_url),
                approval_expiry_seconds=settings.approval_expiry_hours * 3600,
                approval_check_seconds=settings.approval_check_seconds,
            )
            if settings.serve_runs_jobs:
                self.node = WorkerNode(settings, sessions=self.sessions, hub=self.hub)
            self.lost_nodes = LostNodeSweeper(
                self.sessions, self.hub, settings.node_lost_seconds, settings.node_heartbeat_seconds
            )
        else:
            self.dispatcher = LocalDispatcher(
                self.pool,
                self.sessions,
                self.hub,
                self.sdk_url,
                settings.log_flush_seconds,
                log_limits=LogLimits(settings.log_max_lines, settings.log_max_bytes),
                approval_expiry_seconds=settings.approval_expiry_hours * 3600,
                approval_check_seconds=settings.approval_check_seconds,
            )
            self.pool.on_log = self.dispatcher.on_log
            self.pool.on_idle = self.dispatcher.pump
        # Set by begin_shutdown(): until then stop() kills running executions at once.
        self._shutdown_deadline: float | None = None
        self.scheduler = Scheduler(
            self.engine,
            self.sessions,
            self.dispatcher,
            grace_seconds=settings.schedule_grace_seconds,
            poll_seconds=settings.scheduler_poll_seconds,
        )
        # Integrations: OAuth tokens refreshed ahead of expiry in the serving process.
        self.token_refresher = TokenRefresher(
            TokenManager(
                self.sessions,
                lambda: secret_box(settings.secret_key, settings.home),
                settings.integration_refresh_leeway_seconds,
                settings.integration_provider_timeout_seconds,
            ),
            settings.integration_refresh_ahead_seconds,
            settings.integration_refresh_interval_seconds,
        )
        # Audit retention: old events pruned in small batches by the serving process.
        self.audit_pruner = AuditPruner(
            self.sessions, settings.audit_retention_days, settings.audit_prune_interval_seconds
        )
        self.workflow_definitions: list[dict[str, Any]] = []  # of the last scan (endpoints in the OpenAPI document)
        self.watcher: Any = None
        self.last_sync: dict[str, Any] = {}
        self.started = False

    async def start(
        self, *, recover: bool = True, watch: bool | None = None, migrate: bool = True, schedules: bool | None = None
    ) -> None:
        """Migrate, start workers, sync the workspace, recover interrupted executions, watch for edits.

        Args:
            recover: Mark RUNNING executions of a dead server FAILED and re-dispatch PENDING ones
                (only the serving process should; ``bifrost run`` beside a server must not).
            watch: Reload workers when workspace files change (default from settings).
            migrate: Apply database migrations first.
            schedules: Fire cron schedules (default: when recovering, i.e. in the serving process,
                and ``scheduler_enabled``).
        """
        if migrate:
            await upgrade_database_async(self.settings.resolved_database_url)
        if self.queue_mode:
            await ensure_queue_schema(self.settings.resolved_database_url)
        await self.hub.start()  # listening before anything publishes or anyone subscribes
        wire_cache_invalidation(self.hub)
        # The scan first: it finds the files that end or hang an import, which workers then skip.
        await self.sync_workspace()
        if not self.queue_mode:
            await self.pool.start()
        await self.dispatcher.start()
        if self.node is not None:
            await self.node.start(migrate=False)
        self.files.start_cleanup()
        await self.knowledge_jobs.start(recover=recover)
        if recover:
            await self.recover()
            if self.lost_nodes is not None:
                self.lost_nodes.start()
            self.token_refresher.start()
            self.audit_pruner.start()
            self.execution_pruner = ExecutionPruner.attach(self)  # retention, batched, in the background
        if schedules if schedules is not None else (recover and self.settings.scheduler_enabled):
            await self.scheduler.start()
        if watch if watch is not None else self.settings.watch_workspace:
            from app.engine.watcher import WorkspaceWatcher  # watchfiles only when watching

            self.watcher = WorkspaceWatcher(self.settings.workspace, self._on_workspace_change)
            await self.watcher.start()
        self.started = True

    def begin_shutdown(self, grace_seconds: float) -> None:
        """Start no new executions (queued ones stay PENDING for the next start) and give running
        ones ``grace_seconds`` from now to finish before :meth:`stop` ends them."""
        self.dispatcher.stop_accepting()
        if self._shutdown_deadline is None:
            self._shutdown_deadline = time.monotonic() + grace_seconds

    async def stop(self) -> None:
        """Stop scheduler, watcher, dispatcher and workers, and close the database.

        Queued executions stay PENDING (the next start runs them). Running ones may finish until the
        deadline :meth:`begin_shutdown` set (none: they are ended at once); those still running then
        end FAILED with the reason.
        """
        self.dispatcher.stop_accepting()
        await self.scheduler.stop()
        await self.token_refresher.stop()
        await self.audit_pruner.stop()
        if self.watcher:
            await self.watcher.stop()
        await self.files.stop_cleanup()
        await self.knowledge_jobs.stop()
        self.knowledge.close()
        grace = max(0.0, self._shutdown_deadline - time.monotonic()) if self._shutdown_deadline else 0.0
        if self.node is not None:
            await self.node.stop()
        if self.lost_nodes is not None:
            await self.lost_nodes.stop()
        await self.pool.stop(timeout=grace)
        await self.dispatcher.stop()  # records what the pool reported for the runs it ended
        unwire_cache_invalidation(self.hub)
        await self.hub.stop()  # after the last status events went out
        await self.engine.dispose()
        self.started = False

    async def sync_workspace(self, *, reload: bool = False) -> dict[str, Any]:
        """Scan the workspace in a worker process and store its metadata and import errors.

        Args:
            reload: Replace the workers after the scan even if no file became bad (the code changed).
        """
        # Probe first, in throwaway processes, while the current workers keep serving; only then do
        # new workers import the workspace, without the files that failed, ended or hung the scan.
        scan = await self.pool.scan()
        skip = tuple(scan.skip)
        if reload or skip != self.pool.skip:
            self.pool.skip = skip
            if self.pool.running:
                self.pool.reload()
        async with transaction(self.sessions) as session:
            if self.engine.dialect.name == "postgresql":
                # Servers starting together write the same catalogue rows: one at a time,
                # else the second one's INSERTs fail on the first one's keys and it exits.
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})
            counts = await WorkflowService(session).sync(scan.workflows + scan.data_providers, scan.errors)
            await ScheduleService(session).sync_workspace()  # declared schedules follow the code
        WorkflowService.forget_cached()  # again after commit: a lookup during the sync may have cached old rows
        self.workflow_definitions = scan.workflows
        await self.scheduler.reload()
        for error in scan.errors:
            log.warning("workspace: %s: %s", error.get("file"), error.get("error"))
        self.last_sync = counts
        return counts

    async def recover(self) -> int:
        """Handle executions left behind by a previous server; returns how many were re-dispatched.

        In queue mode runs outlive servers: queued ones keep their jobs (start-up gave a job to any
        ``Pending`` row without one) and running ones end only when their node is lost.
        """
        if self.queue_mode:
            await sweep_lost_nodes(self.sessions, self.hub, self.settings.node_lost_seconds)
            return 0
        async with transaction(self.sessions) as session:
            pending = await ExecutionService(session).recover()
        for request in pending:
            await self.dispatcher.dispatch(request)
        return len(pending)

    async def _on_workspace_change(self) -> None:
        await self.sync_workspace(reload=True)
