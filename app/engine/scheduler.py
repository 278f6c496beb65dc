"""Fires cron schedules in the server process (APScheduler 3), in one process at a time.

* **Leadership**: only the process holding the scheduler lock fires. On Postgres it is a session
  advisory lock held on one pooled connection (released when that connection or the process dies,
  so another server takes over within ``poll_seconds``); on SQLite an exclusive ``flock`` on a file
  beside the database. The ``(schedule, slot)`` unique key of :class:`ScheduleRun` is a second
  guard: a slot can be claimed once, whoever tries.
* **Firing** goes through ``ExecutionService.submit`` (``trigger="schedule"``), in the schedule's scope,
  with the schedule's parameters, as a built-in account: the Scheduler (an ordinary member) in an
  organization's scope, the Platform scheduler (platform powers) in the global scope, where every
  schedule declared in code lives (see app/services/identity/system_users.py, docs/triggers.md).
* **Run now** (:meth:`Scheduler.run_now`, the page's button) fires a schedule at once, outside its
  cron slots, the same way and as the same account; the admin who pressed it is in the audit log.
* **Overlap**: while the schedule's previous execution is pending or running, a firing is
  ``skipped`` (policy ``skip``) or ``queued`` until it ends (policy ``queue``; one firing at most is
  held, later ones are skipped).
* **Changes made on another server** reach the leader at once: every write of schedules is followed by
  :meth:`Scheduler.reload`, which also tells the other servers (the ``schedules`` name of
  :mod:`app.services.cluster`, on the event bus); the leader among them reloads when it hears it. The
  poll every ``poll_seconds`` remains the fallback (a bus that was down).
* **Missed firings** (no server was running): on taking the lead, the latest missed slot runs once
  if it is within ``grace_seconds``; the others are recorded as ``missed``.

:meth:`Scheduler.fire` and :meth:`Scheduler.catch_up` take the current time as an argument so tests
can drive them with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from datetime import datetime, timedelta
from typing import Any, Protocol

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db import transaction
from app.models.base import utcnow
from app.models.schedule import Schedule, ScheduleRun
from app.services import cluster
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import DomainError, InvalidInputError
from app.services.executions.dispatch import Dispatcher
from app.services.executions.schedules import (
    MAX_MISSED_WALK,
    ScheduleService,
    build_trigger,
    fire_times,
    next_fire,
)
from app.services.executions.service import ExecutionService
from app.services.identity.system_users import scheduler_account, service_actor

log = logging.getLogger(__name__)
# APScheduler narrates every job at INFO ("Running job ..."); keep its warnings (missed runs) only.
logging.getLogger("apscheduler").setLevel(logging.WARNING)

# pg_advisory_lock key: the ASCII of "bifrost!" (advisory locks are scoped to one database).
LOCK_KEY = int.from_bytes(b"bifrost!", "big") & 0x7FFF_FFFF_FFFF_FFFF
SCHEDULES = "schedules"  # the cluster name a write of schedules is announced under
# A timer may wake a little before the slot the database expects; closer than this is that slot.
_EARLY = timedelta(seconds=2)


# ----- leadership ----------------------------------------------------------------------------------
class _Lock(Protocol):
    async def acquire(self) -> bool: ...
    async def still_held(self) -> bool: ...
    async def release(self) -> None: ...


class _PostgresLock:
    """A session-level advisory lock on one connection kept out of the pool while held."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.connection: AsyncConnection | None = None

    async def acquire(self) -> bool:
        connection = await self.engine.connect()
        try:
            got = (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})).scalar()
            await connection.commit()  # a session lock outlives the transaction; no idle transaction is left
        except BaseException:
            await connection.close()
            raise
        if got:
            self.connection = connection
            return True
        await connection.close()
        return False

    async def still_held(self) -> bool:
        # A session lock is only lost with its connection: a connection that still answers still holds it.
        if self.connection is None:
            return False
        try:
            await self.connection.execute(text("SELECT 1"))
            await self.connection.commit()
            return True
        except Exception:
            log.warning("scheduler: lost the connection holding the scheduler lock")
            with contextlib.suppress(Exception):
                await self.connection.invalidate()
            self.connection = None
            return False

    async def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            await connection.commit()
        except Exception:
            # Never hand a connection that may still hold the lock back to the pool.
            with contextlib.suppress(Exception):
                await connection.invalidate()
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


class _FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database (one scheduler per database file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    async def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    async def still_held(self) -> bool:
        return self.fd is not None

    async def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class _AlwaysLeader:
    """An in-memory SQLite database belongs to one process."""

    async def acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def _lock_for(engine: AsyncEngine) -> _Lock:
    if engine.dialect.name == "postgresql":
        return _PostgresLock(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return _FileLock(f"{database}.scheduler.lock")
    return _AlwaysLeader()


# ----- the scheduler -------------------------------------------------------------------------------
class Scheduler:
    """Keeps one APScheduler job per enabled schedule while this process leads, and fires them.

    Args:
        engine: The platform's database engine (for the lock).
        sessions: Session factory.
        dispatcher: Where submitted executions go.
        grace_seconds: How late a missed firing may still run at start-up.
        poll_seconds: How often a follower tries to take the lead and a leader re-reads the schedules
            (changes made through another server reach it at once on the bus, else this way).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        dispatcher: Dispatcher,
        *,
        grace_seconds: float = 300.0,
        poll_seconds: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.grace_seconds = grace_seconds
        self.poll_seconds = poll_seconds
        self._lock = _lock_for(engine)
        self._aps: AsyncIOScheduler | None = None
        self._jobs: dict[str, tuple[str, str]] = {}
        self._leader = False
        self._task: asyncio.Task[None] | None = None
        self._queued: dict[str, asyncio.Task[None]] = {}
        self._reload_lock = asyncio.Lock()
        self._reload_asked = False  # another server changed schedules: a reload is on its way
        self._background: set[asyncio.Task[None]] = set()

    @property
    def is_leader(self) -> bool:
        """True while this process holds the scheduler lock and fires schedules."""
        return self._leader

    def jobs(self) -> dict[str, tuple[str, str]]:
        """Registered jobs: schedule id -> (cron, timezone)."""
        return dict(self._jobs)

    def status(self) -> dict[str, Any]:
        """What the admin page and API show about this process's scheduler."""
        return {"running": self._task is not None, "leader": self._leader, "jobs": len(self._jobs)}

    # ----- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Try to take the lead now (catching up on missed firings), then keep trying in the background."""
        cluster.register(SCHEDULES, self._changed_elsewhere)
        await self._tick()
        self._task = asyncio.create_task(self._loop(), name="bifrost-scheduler")

    async def stop(self) -> None:
        """Stop firing, drop queued firings' waiters, release the lock."""
        cluster.unregister(SCHEDULES, self._changed_elsewhere)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._step_down()
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            await self._tick()

    async def _tick(self) -> None:
        try:
            if not self._leader:
                if await self._lock.acquire():
                    self._leader = True
                    log.info("scheduler: this process fires schedules")
                    await self.catch_up()
            elif not await self._lock.still_held():
                await self._step_down()
            if self._leader:
                await self._reload()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler: could not refresh; trying again in %s s", self.poll_seconds)

    async def _step_down(self) -> None:
        was_leader, self._leader = self._leader, False
        if self._aps is not None:
            self._aps.remove_all_jobs()
        self._jobs.clear()
        for task in self._queued.values():
            task.cancel()
        await asyncio.gather(*self._queued.values(), return_exceptions=True)
        self._queued.clear()
        await self._lock.release()
        if was_leader:
            log.info("scheduler: this process stopped firing schedules")

    def _scheduler(self) -> AsyncIOScheduler:
        if self._aps is None:
            self._aps = AsyncIOScheduler(
                timezone="UTC",
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": max(1, int(self.grace_seconds)),
                },
            )
            self._aps.start()
        return self._aps

    async def reload(self) -> None:
        """After a write of schedules (committed): match the jobs here when leading, and tell the other
        servers, whose leader does the same at once."""
        cluster.announce(SCHEDULES)
        await self._reload()

    def _changed_elsewhere(self) -> None:
        """Another server wrote schedules: the leader reloads (one reload at a time for a burst of writes)."""
        if not self._leader or self._reload_asked:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here: the poll will see it
        self._reload_asked = True
        task = loop.create_task(self._reload_for_others(), name="bifrost-scheduler-reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_for_others(self) -> None:
        self._reload_asked = False  # before reading: a write committed after this read asks again
        try:
            await self._reload()
        except Exception:
            log.exception("scheduler: could not reload after another server's change; the poll will")

    async def _reload(self) -> None:
        """Match the APScheduler jobs to the enabled schedules in the database (no-op unless leading)."""
        if not self._leader:
            return
        async with self._reload_lock:
            async with transaction(self.sessions) as session:
                rows = await ScheduleService(session).for_scheduler()
            if not self._leader:
                return
            desired = {row.id: (row.cron, row.timezone) for row in rows}
            aps = self._scheduler()
            for schedule_id, spec in list(self._jobs.items()):
                if desired.get(schedule_id) != spec:
                    with contextlib.suppress(JobLookupError):
                        aps.remove_job(schedule_id)
                    del self._jobs[schedule_id]
            for schedule_id, spec in desired.items():
                if schedule_id in self._jobs:
                    continue
                try:
                    trigger = build_trigger(*spec)
                except InvalidInputError as exc:
                    log.warning("scheduler: schedule %s cannot fire: %s", schedule_id, exc)
                    continue
                aps.add_job(self._run_job, trigger=trigger, id=schedule_id, args=[schedule_id], replace_existing=True)
                self._jobs[schedule_id] = spec

    async def _run_job(self, schedule_id: str) -> None:
        try:
            await self.fire(schedule_id)
        except Exception:
            log.exception("scheduler: firing schedule %s failed", schedule_id)

    # ----- firing -----------------------------------------------------------------------------------
    async def fire(
        self, schedule_id: str, *, now: datetime | None = None, due: datetime | None = None
    ) -> ScheduleRun | None:
        """Fire one schedule for the slot that is due; returns the record, or None if nothing was done.

        Args:
            schedule_id: The schedule.
            now: The current time (tests pass a fake clock).
            due: The slot being fired; default the schedule's expected next run (or ``now``).

        Returns:
            The :class:`ScheduleRun` (submitted, skipped, queued or failed); None when the schedule is
            gone, disabled, its workflow unavailable, or the slot was already claimed by another process.
        """
        now = now or utcnow()
        async with transaction(self.sessions) as session:
            service = ScheduleService(session)
            row = await session.get(Schedule, schedule_id)
            if row is None or not row.enabled or not await service.workflow_active(row):
                return None
            if due is None:
                expected = row.next_run_at
                due = expected if expected is not None and expected <= now + _EARLY else now.replace(microsecond=0)
            next_at = next_fire(build_trigger(row.cron, row.timezone), max(now, due))
            previous = await service.unfinished_execution(row, now)
            queued = await service.queued_runs(row.id)
            if previous or queued:
                if row.overlap_policy == "queue" and not queued:
                    outcome, detail = "queued", f"waiting for execution {previous} to end"
                elif queued:
                    outcome, detail = "skipped", "a firing is already queued behind the running one"
                else:
                    outcome, detail = "skipped", f"the previous run (execution {previous}) was still running"
                run = service.record(row, due, outcome, detail=detail, next_run_at=next_at)
                if not await _claimed(session):
                    return None
                await session.commit()
                if outcome == "queued":
                    self._queue(row.id, run.id)
                return run
            run = service.record(row, due, "submitted", next_run_at=next_at)
            if not await _claimed(session):
                return None
            run_id = run.id
            refusal = await self._submit(session, row, run)
        if refusal is not None:
            return await self._record_failure(schedule_id, run_id, due, next_at, refusal)
        return run

    async def _submit(self, session: AsyncSession, row: Schedule, run: ScheduleRun) -> str | None:
        """Submit the schedule's workflow (the claim commits with the execution); the refusal reason, or None."""
        try:
            actor = await service_actor(session, scheduler_account(row.organization_id), row.organization_id)
            execution = await ExecutionService(session, self.dispatcher).submit(
                row.workflow_id, row.params, actor, trigger="schedule"
            )
        except DomainError as exc:
            # Bad parameters, a workflow the scheduler may not see, a switched-off account: recorded, not raised.
            await session.rollback()
            return str(exc)
        run.execution_id = execution.id
        row.last_execution_id = execution.id
        return None

    async def run_now(self, actor: Actor, schedule_id: str) -> ScheduleRun:
        """Fire a schedule at once (admins), whatever its cron slots and overlap policy; returns the record.

        The firing runs exactly like a timed one (same account, scope and parameters) and is recorded
        among its firings with ``detail`` naming who asked; its next timed firing does not move.

        Raises:
            PermissionDeniedError: Not a platform admin.
            NotFoundError: No such schedule.
        """
        actor.require_admin("run schedules")
        now = utcnow()
        async with transaction(self.sessions) as session:
            service = ScheduleService(session)
            row = await service.get(actor, schedule_id)
            detail = f"run now by {actor.email}"
            run = service.record(row, now, "submitted", detail=detail)
            await audit.record(
                session,
                actor,
                audit.SCHEDULE_RUN_NOW,
                "schedule",
                row.id,
                row.organization_id,
                {"workflow": row.workflow_name, "run_id": run.id},
            )
            await session.flush()
            refusal = await self._submit(session, row, run)
        if refusal is not None:
            # The submit's rollback took the record and the audit event with it: write both again as the failure.
            async with transaction(self.sessions) as session:
                row = await ScheduleService(session).get(actor, schedule_id)
                failed = ScheduleService(session).record(row, now, "failed", detail=f"{detail}: {refusal}")
                await audit.record(
                    session,
                    actor,
                    audit.SCHEDULE_RUN_NOW,
                    "schedule",
                    row.id,
                    row.organization_id,
                    {"workflow": row.workflow_name, "run_id": failed.id, "refused": refusal},
                )
            return failed
        return run

    async def _record_failure(
        self, schedule_id: str, run_id: str, due: datetime, next_at: datetime | None, reason: str
    ) -> ScheduleRun | None:
        async with transaction(self.sessions) as session:
            row = await session.get(Schedule, schedule_id)
            if row is None:
                return None
            existing = await session.get(ScheduleRun, run_id)
            if existing is not None:  # a queued firing: turn its record into the failure
                existing.outcome, existing.detail = "failed", reason
                row.last_outcome, row.last_detail = "failed", reason
                return existing
            run = ScheduleService(session).record(row, due, "failed", detail=reason, next_run_at=next_at)
            return run if await _claimed(session) else None

    # ----- queue policy -------------------------------------------------------------------------------
    def _queue(self, schedule_id: str, run_id: str) -> None:
        task = asyncio.create_task(self._run_queued(schedule_id, run_id), name=f"schedule-queued-{run_id}")
        self._queued[run_id] = task
        task.add_done_callback(lambda _t: self._queued.pop(run_id, None))

    async def _run_queued(self, schedule_id: str, run_id: str) -> None:
        try:
            while True:
                async with transaction(self.sessions) as session:
                    row = await session.get(Schedule, schedule_id)
                    previous = await ScheduleService(session).unfinished_execution(row) if row else None
                if previous is None:
                    break
                ended = await self.dispatcher.wait(previous, self.poll_seconds)
                if ended:  # ended here, or unknown to this dispatcher: re-read the database shortly
                    await asyncio.sleep(0.05)
            await self._submit_queued(schedule_id, run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler: queued firing %s of schedule %s failed", run_id, schedule_id)

    async def _submit_queued(self, schedule_id: str, run_id: str) -> None:
        async with transaction(self.sessions) as session:
            row = await session.get(Schedule, schedule_id)
            run = await session.get(ScheduleRun, run_id)
            if run is None or run.outcome != "queued":
                return
            if row is None or not row.enabled:
                run.outcome, run.detail = "skipped", "the schedule was disabled while this firing was queued"
                return
            run.outcome, run.detail = "submitted", "ran when the previous run ended"
            row.last_outcome, row.last_detail = "submitted", None
            due, next_at = run.scheduled_for, row.next_run_at
            refusal = await self._submit(session, row, run)
        if refusal is not None:
            await self._record_failure(schedule_id, run_id, due, next_at, refusal)

    # ----- missed firings -------------------------------------------------------------------------------
    async def catch_up(self, now: datetime | None = None) -> int:
        """Handle firings missed while no server ran; returns how many were run late.

        For each enabled schedule whose expected firing is past: the latest missed slot runs once if
        it is at most ``grace_seconds`` old; every other missed slot is recorded (one ``missed`` record
        per schedule, counting them). Firings that were queued when the last server stopped are
        queued again within the grace period, else recorded as missed.
        """
        now = now or utcnow()
        grace = timedelta(seconds=self.grace_seconds)
        late: list[tuple[str, datetime]] = []
        requeue: list[tuple[str, str]] = []
        async with transaction(self.sessions) as session:
            service = ScheduleService(session)
            for row in await service.overdue(now):
                assert row.next_run_at is not None
                try:
                    trigger = build_trigger(row.cron, row.timezone)
                except InvalidInputError:
                    continue
                slots = list(fire_times(trigger, row.next_run_at, now))
                next_at = next_fire(trigger, now)
                if not slots:  # the expression changed since: nothing of it was missed
                    row.next_run_at = next_at
                    continue
                run_latest = now - slots[-1] <= grace
                missed = slots[:-1] if run_latest else slots
                if missed:
                    count = f"at least {len(missed)}" if len(slots) >= MAX_MISSED_WALK else str(len(missed))
                    detail = (
                        f"{count} firing(s) from {missed[0].isoformat()} to {missed[-1].isoformat()} were missed "
                        "while no server was running"
                    )
                    if not run_latest:
                        detail += f"; the latest is older than the {self.grace_seconds:g} s grace period, so none ran"
                    service.record(row, missed[0], "missed", detail=detail, next_run_at=next_at, touch_last_run=False)
                if run_latest:
                    late.append((row.id, slots[-1]))
                else:
                    row.next_run_at = next_at
            for run in await service.queued_runs():
                if now - run.scheduled_for <= grace:
                    requeue.append((run.schedule_id, run.id))
                else:
                    run.outcome, run.detail = "missed", "the server stopped while this firing was queued"
            if not await _claimed(session):
                return 0  # another process recorded the same missed slots: it is catching up
        fired = 0
        for schedule_id, slot in late:
            if await self.fire(schedule_id, now=now, due=slot) is not None:
                fired += 1
        for schedule_id, run_id in requeue:
            self._queue(schedule_id, run_id)
        return fired


async def _claimed(session: AsyncSession) -> bool:
    """Flush pending records; False (and rolled back) when a slot was claimed by someone else."""
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return False
    return True
