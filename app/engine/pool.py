"""A pool of warm worker processes that run executions one at a time each.

Workers (:mod:`app.engine.worker`) import the workspace once at start, so a
run costs no interpreter start. The pool enforces limits from the outside: a
job past its timeout, or cancelled, gets its worker SIGKILLed (with the whole
process group, so child processes go too) and the worker is replaced. A worker
that dies on its own fails its job as ``WorkerLost`` and is replaced as well.

:meth:`WorkerPool.run` never raises for anything the workflow does: every
outcome is a :class:`~app.engine.protocol.JobResult`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.engine import forkserver, procs
from app.engine.forkserver import ForkedProcess, ForkServer
from app.engine.protocol import (
    MEMORY_LIMIT_EXCEEDED,
    NOT_STARTED,
    STATUS_CANCELLED,
    STATUS_FAILED,
    Job,
    JobResult,
    LogRecord,
    ScanResult,
    decode_message,
    encode_message,
    utcnow,
)
from app.engine.scan import Quarantine, scan_workspace
from app.engine.spawn import (
    LOCAL_FILES_ENV,
    STDERR_TAIL_LINES,
    build_worker_env,
    check_local_files_root,
    check_worker_user,
    describe_exit,
    format_seconds,
    kill_group,
    process_identity,
    scratch_folder,
    start_worker,
)

log = logging.getLogger(__name__)

_RETIRE_GRACE_SECONDS = 5.0
_MAX_RESPAWN_DELAY = 10.0

# Why the pool killed a worker; None means it died on its own.
_TIMEOUT, _CANCELLED, _STOPPED, _RETIRED, _MEMORY = "timeout", "cancelled", "stopped", "retired", "memory"
# How often the memory of busy workers (with every process their run started) is read.
_MEMORY_POLL_SECONDS = 0.25


class WorkerStartError(RuntimeError):
    """A worker process could not start (it exited or hung before it was ready)."""


@dataclass(eq=False)
class _Pending:
    job: Job
    future: asyncio.Future[JobResult]
    worker: _Worker | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    requeued: bool = False


@dataclass(eq=False)
class _Worker:
    proc: ForkedProcess | asyncio.subprocess.Process
    generation: int
    ready: asyncio.Future[dict[str, Any]]
    current: _Pending | None = None
    kill_reason: str | None = None
    timer: asyncio.TimerHandle | None = None
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES))
    base_rss: int = 0  # resident memory once ready: a run's memory is what it adds
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # [stderr reader, stdout reader]

    @property
    def pid(self) -> int:
        return self.proc.pid


class WorkerPool:
    """Warm worker processes running jobs from a queue, one job per worker at a time.

    Args:
        workspace: The workspace folder workers import.
        size: Number of worker processes.
        on_log: Called (in the event loop) with each captured log line of an
            execution, as it is produced. May also be assigned later.
        env: Environment variables for workers, merged over ``os.environ``
            minus ``BIFROST_*``, ``DATABASE_URL`` and ``PGPASSWORD``.
        start_timeout: Seconds a worker may take to import the workspace.
        local_files_root: Root of ``bifrost.files`` local mode in workers (``BIFROST_LOCAL_FILES_ROOT``);
            a folder in the pool's scratch folder (removed with the pool) when None.
        import_timeout: Seconds one workspace file may take to import.
        memory_mb: Memory one run may use (worker plus the processes it starts); None for no limit.
            Enforced twice: ``RLIMIT_AS`` in the worker (an allocation past it raises MemoryError at
            once) and by polling the resident memory of the worker's process tree (children have
            their own address space); either way the run fails ``MemoryLimitExceeded``.
        fork_server: Fork workers and scans from a fork server (:mod:`app.engine.forkserver`) rather than
            start each as ``python -m app.engine.worker``; None: where supported (Linux).
    """

    def __init__(
        self,
        workspace: Path | str,
        size: int,
        *,
        on_log: Callable[[LogRecord], None] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 120.0,
        user: str | None = None,
        local_files_root: Path | str | None = None,
        import_timeout: float = 30.0,
        memory_mb: int | None = None,
        fork_server: bool | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.user = check_worker_user(user)
        self.workspace = Path(workspace).resolve()
        self.size = size
        self.on_log = on_log
        # Called (in the event loop) whenever a worker finished a job (it is idle now, or it took the next job
        # waiting in this pool), so a queue outside can feed it.
        self.on_idle: Callable[[], None] | None = None
        self.start_timeout = start_timeout
        self.last_scan: ScanResult | None = None
        self.import_timeout = import_timeout
        self.memory_mb = memory_mb
        # Workspace files workers do not import (they failed, ended or hung the last scan).
        self.skip: tuple[str, ...] = ()
        # Kill and reap orphans re-parented to this process when a worker dies (set where this
        # process is a child subreaper, i.e. in `bifrost serve`).
        self.sweep_orphans = False
        self._quarantine: Any = None
        self._memory_task: asyncio.Task[None] | None = None
        self._oom_kills: int | None = None
        # Workers run in an empty folder of their own, and local-mode files live apart from the workspace.
        self.scratch = scratch_folder(self.user)
        weakref.finalize(self, shutil.rmtree, self.scratch, ignore_errors=True)
        self.local_files_root = check_local_files_root(
            Path(local_files_root) if local_files_root else self.scratch / "local-files", self.workspace, self.user
        )
        self._extra_env = dict(env or {})
        self._env = build_worker_env({**self._extra_env, LOCAL_FILES_ENV: str(self.local_files_root)})
        # Workers and scans are forked from one process that imported the worker once (same user,
        # environment and folder as a worker); see app.engine.forkserver.
        use_fork_server = forkserver.SUPPORTED if fork_server is None else fork_server
        self._fork_server = (
            ForkServer(self._env, process_identity(self.scratch, self.user)) if use_fork_server else None
        )
        self._running = False
        self._stopping = asyncio.Event()
        self._start_failures = 0
        self._generation = 0
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._queue: collections.deque[_Pending] = collections.deque()
        self._pending: dict[str, _Pending] = {}
        self._respawns: set[asyncio.Task[None]] = set()

    # ----- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start ``size`` workers and wait until each has imported the workspace.

        Raises:
            WorkerStartError: If a worker exits or hangs before it is ready
                (the pool is stopped again).
        """
        if self._running:
            return
        self._running = True
        self._stopping.clear()
        if self.memory_mb and self._memory_task is None:
            self._memory_task = asyncio.create_task(self._watch_memory(), name="bifrost-pool-memory")
        try:
            workers = [await self._spawn() for _ in range(self.size)]
            await asyncio.gather(*(w.ready for w in workers))
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout: float = 0.0) -> None:
        """Stop every worker; queued jobs and jobs still running after ``timeout`` end FAILED (``WorkerLost``).

        Args:
            timeout: Seconds to let running jobs finish first.
        """
        self._running = False
        self._stopping.set()
        if self._memory_task is not None:
            self._memory_task.cancel()
            self._memory_task = None
        self.drop_queued()
        running = [w.current.future for w in self._workers if w.current is not None]
        if timeout > 0 and running:
            await asyncio.wait(running, timeout=timeout)
        # Respawns are awaited, not cancelled: cancelling one mid-spawn could leak a process.
        await asyncio.gather(*self._respawns, return_exceptions=True)
        workers = list(self._workers)
        for worker in workers:
            worker.kill_reason = worker.kill_reason or _STOPPED
            kill_group(worker.proc)
        await asyncio.gather(*(t for w in workers for t in w.tasks), return_exceptions=True)
        self._idle.clear()
        if self._fork_server is not None:
            await self._fork_server.stop()

    def drop_queued(self) -> None:
        """End every job still waiting here for a worker as not started (``NOT_STARTED``: it may run later)."""
        while self._queue:
            pending = self._queue.popleft()
            self._resolve(
                pending, self._failure(pending, NOT_STARTED, "The worker pool stopped before the job started")
            )

    def reload(self) -> None:
        """Make new runs use the current workspace files.

        Idle workers are replaced now, busy ones after their current job; jobs
        submitted from now on only run on workers that imported the new code.
        """
        self._generation += 1
        idle, self._idle = self._idle, []
        for worker in idle:
            self._retire(worker)

    # ----- running -----------------------------------------------------------------------------
    async def run(self, job: Job) -> JobResult:
        """Run a job on the next free worker and return how it ended.

        Workflow failures, timeouts, cancellation and worker crashes all come
        back as a result, never as an exception. If the calling task is
        cancelled, the job is cancelled too.

        Args:
            job: The job; ``execution_id`` must not be queued or running already.

        Returns:
            The job's result.

        Raises:
            RuntimeError: If the pool is not running.
            ValueError: If a job with the same execution id is queued or running.
        """
        if not self._running:
            raise RuntimeError("the worker pool is not running")
        if job.execution_id in self._pending:
            raise ValueError(f"execution {job.execution_id} is already queued or running")
        pending = _Pending(job, asyncio.get_running_loop().create_future())
        self._pending[job.execution_id] = pending
        if self._idle and not self._queue:
            self._dispatch(self._idle.pop(), pending)
        else:
            self._queue.append(pending)
        try:
            return await pending.future
        except asyncio.CancelledError:
            self._abandon(pending)
            raise
        finally:
            self._pending.pop(job.execution_id, None)

    async def cancel(self, execution_id: str) -> bool:
        """Cancel a queued or running job; its ``run()`` returns status Cancelled.

        A running job's worker is killed and replaced. Returns once the job has
        ended (it may still have completed if it finished at that very moment).

        Args:
            execution_id: The job's execution id.

        Returns:
            True if the job was queued or running, False if unknown or finished.
        """
        pending = self._pending.get(execution_id)
        if pending is None or pending.future.done():
            return False
        if pending.worker is None:
            with contextlib.suppress(ValueError):
                self._queue.remove(pending)
            self._resolve(pending, self._cancelled(pending))
            return True
        worker = pending.worker
        worker.kill_reason = worker.kill_reason or _CANCELLED
        kill_group(worker.proc)
        await asyncio.wait([pending.future])
        return True

    async def scan(self) -> ScanResult:
        """Import the workspace in a one-shot process and return what it defines (see :func:`scan_workspace`)."""
        scan = scan_workspace

        if self._quarantine is None:
            self._quarantine = Quarantine()
        return await scan(
            self.workspace,
            env=self._extra_env,
            user=self.user,
            import_timeout=self.import_timeout,
            quarantine=self._quarantine,
            launcher=self._fork_server,
        )

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def idle_count(self) -> int:
        """Workers free to start a job now (0 while jobs are queued)."""
        return 0 if self._queue else len(self._idle)

    def load(self) -> int:
        """Jobs given to the pool that have not ended: running on a worker or waiting here for one."""
        return sum(1 for pending in self._pending.values() if not pending.future.done())

    def stats(self) -> dict[str, int]:
        """Return counts: ``size``, ``workers``, ``busy``, ``idle``, ``starting``, ``queued``, ``generation``."""
        busy = sum(1 for w in self._workers if w.current is not None)
        starting = sum(1 for w in self._workers if not w.ready.done())
        return {
            "size": self.size,
            "workers": len(self._workers),
            "busy": busy,
            "idle": len(self._idle),
            "starting": starting,
            "queued": len(self._queue),
            "generation": self._generation,
        }

    def pids(self) -> list[int]:
        """Return the process ids of the live workers."""
        return sorted(w.pid for w in self._workers if w.proc.returncode is None)

    def pid_of(self, execution_id: str) -> int | None:
        """Return the pid of the worker running ``execution_id``, or None if it is not running."""
        pending = self._pending.get(execution_id)
        return pending.worker.pid if pending is not None and pending.worker is not None else None

    # ----- internals: scheduling ----------------------------------------------------------------
    def _dispatch(self, worker: _Worker, pending: _Pending) -> None:
        worker.current = pending
        pending.worker = worker
        pending.dispatched_at = utcnow()
        job = pending.job
        worker.timer = asyncio.get_running_loop().call_later(job.timeout_seconds, self._on_timeout, worker, pending)
        assert worker.proc.stdin is not None
        worker.proc.stdin.write(encode_message(job.to_message()))

    def _pump(self) -> None:
        while self._queue and self._idle:
            self._dispatch(self._idle.pop(), self._queue.popleft())

    def _release(self, worker: _Worker) -> None:
        """A worker finished its job: back to idle, or out if it is stale."""
        if worker.kill_reason is not None:
            return  # being killed; replaced when it exits
        if not self._running or worker.generation != self._generation:
            self._retire(worker)
            return
        self._idle.append(worker)
        self._pump()
        # Idle, or it took the next job waiting here: either way a queue outside may hand over one more
        # (the dispatcher keeps one run ahead per worker, see LocalDispatcher.pump).
        if self.on_idle is not None:
            try:
                self.on_idle()
            except Exception:
                log.exception("on_idle callback failed")

    def _abandon(self, pending: _Pending) -> None:
        # The caller of run() went away: do not leave the job queued or running.
        if pending.worker is None:
            with contextlib.suppress(ValueError):
                self._queue.remove(pending)
        elif pending.worker.current is pending:
            pending.worker.kill_reason = pending.worker.kill_reason or _CANCELLED
            kill_group(pending.worker.proc)

    def _on_timeout(self, worker: _Worker, pending: _Pending) -> None:
        if worker.current is pending and not pending.future.done():
            worker.kill_reason = worker.kill_reason or _TIMEOUT
            kill_group(worker.proc)

    @staticmethod
    def _resolve(pending: _Pending, result: JobResult) -> None:
        if not pending.future.done():
            pending.future.set_result(result)

    def _failure(self, pending: _Pending, error_type: str, message: str, tb: str | None = None) -> JobResult:
        now = utcnow()
        started = pending.started_at or pending.dispatched_at or now
        return JobResult(
            execution_id=pending.job.execution_id,
            status=STATUS_FAILED,
            error_message=message,
            error_type=error_type,
            traceback=tb,
            # Pool failures (timeout, cancel, lost worker...) carry messages the platform wrote.
            user_error=True,
            started_at=started,
            completed_at=now,
            duration_ms=max(0, int((now - started).total_seconds() * 1000)),
        )

    def _cancelled(self, pending: _Pending) -> JobResult:
        result = self._failure(pending, "Cancelled", "Cancelled")
        result.status = STATUS_CANCELLED
        return result

    # ----- internals: processes ------------------------------------------------------------------
    async def _spawn(self) -> _Worker:
        args = ["--import-timeout", str(self.import_timeout)]
        if self.memory_mb:
            args += ["--memory-mb", str(self.memory_mb)]
        for relpath in self.skip:
            args += ["--skip", relpath]
        # Forked from the pool's fork server (started on first use) where there is one: no interpreter start.
        proc = await start_worker(
            self.workspace,
            args,
            env=self._env,
            cwd=self.scratch,
            user=self.user,
            stdin=True,
            fork_server=self._fork_server,
        )
        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # Nobody may await it (e.g. a replacement killed by stop()): no "never retrieved" noise.
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        worker = _Worker(proc=proc, generation=self._generation, ready=ready)
        self._workers.add(worker)
        asyncio.get_running_loop().call_later(self.start_timeout, self._on_start_timeout, worker)
        worker.tasks = [
            asyncio.create_task(self._read_stderr(worker), name=f"bifrost-worker-{proc.pid}-stderr"),
            asyncio.create_task(self._read_stdout(worker), name=f"bifrost-worker-{proc.pid}"),
        ]
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Ask an idle worker to exit (closing its stdin); kill it if it lingers."""
        worker.kill_reason = worker.kill_reason or _RETIRED
        if worker.proc.stdin is not None:
            worker.proc.stdin.close()
        asyncio.get_running_loop().call_later(_RETIRE_GRACE_SECONDS, kill_group, worker.proc)

    def _on_start_timeout(self, worker: _Worker) -> None:
        if not worker.ready.done() and worker.proc.returncode is None:
            worker.stderr_tail.append(f"(not ready within {format_seconds(self.start_timeout)}; killed)")
            kill_group(worker.proc)  # its exit is logged and it is replaced, with back-off

    def _respawn_soon(self, delay: float) -> None:
        task = asyncio.create_task(self._respawn(delay), name="bifrost-worker-respawn")
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, delay: float) -> None:
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        if self._running:
            await self._spawn()

    def _oom_killed(self) -> bool:
        # The kernel counts its out-of-memory kills; one more since the last poll is taken as ours.
        now = procs.oom_kills()
        return now is not None and self._oom_kills is not None and now > self._oom_kills

    async def _watch_memory(self) -> None:
        assert self.memory_mb
        limit = self.memory_mb * 1024 * 1024
        while True:
            self._oom_kills = procs.oom_kills()
            for worker in list(self._workers):
                if worker.current is None or worker.kill_reason is not None:
                    continue
                # Every process of the run counts: RLIMIT_AS binds each process alone.
                if procs.tree_rss_bytes(worker.pid) - worker.base_rss > limit:
                    worker.kill_reason = _MEMORY
                    kill_group(worker.proc)
            await asyncio.sleep(_MEMORY_POLL_SECONDS)

    async def _read_stderr(self, worker: _Worker) -> None:
        # The worker's own diagnostics (workflow output is captured separately):
        # kept to explain a crash, and logged for operators.
        stream = worker.proc.stderr
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line beyond the limit: skip it
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            worker.stderr_tail.append(text)
            log.warning("worker %s: %s", worker.pid, text)

    async def _read_stdout(self, worker: _Worker) -> None:
        stream = worker.proc.stdout
        assert stream is not None
        try:
            while True:
                line = await stream.readline()
                if not line:
                    break
                self._handle(worker, decode_message(line))
        except Exception:
            log.exception("worker %s: protocol error; killing it", worker.pid)
            kill_group(worker.proc)
        await self._on_exit(worker)

    def _handle(self, worker: _Worker, message: dict[str, Any]) -> None:
        kind = message.get("type")
        pending = worker.current
        if kind == "log":
            record = LogRecord.from_message(message)
            if pending is None or record.execution_id != pending.job.execution_id:
                # Output outside the running job (workspace import, a thread a
                # finished job left behind) is the operator's, not an execution's.
                level = logging.getLevelName(record.level)
                log.log(level, "worker %s: %s: %s", worker.pid, record.logger, record.message)
            elif self.on_log is not None:
                try:
                    self.on_log(record)
                except Exception:
                    log.exception("on_log callback failed")
            return
        if kind == "started":
            if pending is not None and pending.job.execution_id == message.get("execution_id"):
                pending.started_at = datetime.fromisoformat(message["started_at"])
        elif kind == "result":
            if pending is None or pending.job.execution_id != message.get("execution_id"):
                log.warning("worker %s: result for unexpected execution %s", worker.pid, message.get("execution_id"))
                return
            worker.current = None
            if worker.timer is not None:
                worker.timer.cancel()
                worker.timer = None
            if message.get("retire"):  # it exits by itself after this result; replaced then
                worker.kill_reason = worker.kill_reason or _RETIRED
            self._resolve(pending, JobResult.from_message(message))
            self._release(worker)
        elif kind == "ready":
            self._on_ready(worker, message)

    def _on_ready(self, worker: _Worker, message: dict[str, Any]) -> None:
        worker.base_rss = procs.rss_bytes(worker.pid)
        if not worker.ready.done():
            worker.ready.set_result(message)
        self._start_failures = 0
        if worker.generation == self._generation:
            self.last_scan = ScanResult.from_dict(message)
        self._release(worker)

    async def _on_exit(self, worker: _Worker) -> None:
        returncode = await worker.proc.wait()
        procs.spawned.discard(worker.pid)
        if self.sweep_orphans:
            # What its runs started was below it; a worker that died on its own (a crash, the OOM
            # killer) left those processes to us, the subreaper: they end with their run.
            procs.sweep_orphans()
        # Let the stderr reader collect the last words (e.g. a faulthandler dump).
        stderr_reader = worker.tasks[0]
        await asyncio.wait([stderr_reader], timeout=1.0)
        self._workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        if worker.timer is not None:
            worker.timer.cancel()
        tail = "\n".join(worker.stderr_tail) or None
        delay = 0.0
        if not worker.ready.done():
            detail = f"worker {worker.pid} {describe_exit(returncode)} before it was ready" + (
                f":\n{tail}" if tail else ""
            )
            worker.ready.set_exception(WorkerStartError(detail))
            if worker.kill_reason is None:
                log.error("%s", detail)
                # Back off, so a workspace that crashes the interpreter does not spin.
                self._start_failures += 1
                delay = min(0.25 * 2**self._start_failures, _MAX_RESPAWN_DELAY)
        pending, worker.current = worker.current, None
        if pending is not None and not pending.future.done():
            self._finish_lost(pending, worker, returncode, tail)
        if self._running:
            self._respawn_soon(delay)
        self._pump()

    def _finish_lost(self, pending: _Pending, worker: _Worker, returncode: int | None, tail: str | None) -> None:
        reason = worker.kill_reason
        if reason == _TIMEOUT:
            message = f"Timed out after {format_seconds(pending.job.timeout_seconds)}"
            self._resolve(pending, self._failure(pending, "TimeoutError", message))
        elif reason == _CANCELLED:
            self._resolve(pending, self._cancelled(pending))
        elif reason == _MEMORY or (reason is None and returncode == -signal.SIGKILL and self._oom_killed()):
            message = (
                f"MemoryLimitExceeded: the run used more memory than its limit of {self.memory_mb} MB "
                "(BIFROST_RUN_MEMORY_MB); its worker was replaced"
                if reason == _MEMORY
                else "MemoryLimitExceeded: the kernel's out-of-memory killer ended the worker running it"
            )
            self._resolve(pending, self._failure(pending, MEMORY_LIMIT_EXCEEDED, message, tail))
        elif reason is None and pending.started_at is None and not pending.requeued and self._running:
            # The worker died before it even read the job: give the job another worker.
            pending.requeued = True
            pending.worker = None
            self._queue.appendleft(pending)
        elif reason == _STOPPED:
            self._resolve(
                pending, self._failure(pending, "WorkerLost", "The worker pool stopped while the job was running")
            )
        else:
            message = f"Worker process {describe_exit(returncode)} while running the job"
            self._resolve(pending, self._failure(pending, "WorkerLost", message, tail))
