"""Cron schedules: declared by ``@workflow(schedule=...)`` or added by admins; validation and bookkeeping.

The engine's :mod:`app.engine.scheduler` decides *when* to fire; this service owns the rows: cron
parsing (with the reason when an expression is refused), the workspace sync, the admin API's
operations, and the records each firing leaves (:class:`ScheduleRun`).
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models import Execution, Organization, Workflow, WorkspaceError
from app.models.base import utcnow
from app.models.schedule import Schedule, ScheduleRun
from app.services.actor import Actor
from app.services.audit import events as audit
from app.services.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    reject_unknown_fields,
    require_bool,
)
from app.services.executions.cron import (  # noqa: F401  (re-exported: the scheduler and tests import them here)
    MAX_MISSED_WALK,
    build_trigger,
    checked_next_run,
    fire_times,
    next_fire,
    zone,
)
from app.services.executions.service import params_model
from app.services.executions.views import ScheduleRunView, ScheduleView
from bifrost._schema import validate_parameters
from bifrost.enums import ExecutionStatus
from bifrost.errors import ValidationError

OVERLAP_POLICIES = ("skip", "queue")
SOURCE_WORKSPACE = "workspace"
SOURCE_ADMIN = "admin"
UNFINISHED = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value)
MAX_RUNS_LIMIT = 500
# How long past its timeout an execution may still be marked unfinished before it counts as abandoned.
ORPHAN_MARGIN_SECONDS = 10

_UPDATABLE = frozenset({"cron", "timezone", "params", "enabled", "overlap_policy"})


# ----- views ----------------------------------------------------------------------------------------
def schedule_status(row: Schedule, workflow_active: bool, execution_status: str | None = None) -> str:
    """One word for the admin page: disabled, unavailable (workflow gone), invalid, or how the last firing went.

    A submitted firing shows its execution's status (``completed``, ``failed``, ``running``...): "submitted"
    alone hid every firing that failed inside the workflow.
    """
    if not workflow_active:
        return "unavailable"
    if not row.enabled:
        return "disabled"
    if row.next_run_at is None:
        return "invalid"
    if row.last_outcome == "submitted" and execution_status:
        return execution_status.lower()
    return row.last_outcome or "waiting"


def runs_as(row: Schedule) -> str:
    """Who a schedule's firings run as (docs/triggers.md)."""
    if row.organization_id:
        return "Scheduler, a member of the organization"
    return "Platform scheduler, with platform powers"


def schedule_view(
    row: Schedule, workflow_active: bool = True, org_name: str | None = None, execution_status: str | None = None
) -> ScheduleView:
    """The API shape of a schedule (``execution_status``: of its last execution, when known)."""
    return {
        "id": row.id,
        "workflow_id": row.workflow_id,
        "workflow_name": row.workflow_name,
        "workflow_active": workflow_active,
        "organization_id": row.organization_id,
        "organization_name": org_name,
        "scope": row.organization_id or "GLOBAL",
        "source": row.source,
        "cron": row.cron,
        "declared_cron": row.declared_cron,
        "timezone": row.timezone,
        "params": row.params,
        "enabled": row.enabled,
        "overlap_policy": row.overlap_policy,
        "next_run_at": row.next_run_at.isoformat() if row.next_run_at else None,
        "last_run_at": row.last_run_at.isoformat() if row.last_run_at else None,
        "last_outcome": row.last_outcome,
        "last_execution_id": row.last_execution_id,
        "last_execution_status": execution_status,
        "last_detail": row.last_detail,
        "status": schedule_status(row, workflow_active, execution_status),
        "runs_as": runs_as(row),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def run_view(run: ScheduleRun, execution_status: str | None = None) -> ScheduleRunView:
    """The API shape of one firing."""
    return {
        "id": run.id,
        "schedule_id": run.schedule_id,
        "scheduled_for": run.scheduled_for.isoformat(),
        "fired_at": run.fired_at.isoformat(),
        "outcome": run.outcome,
        "execution_id": run.execution_id,
        "execution_status": execution_status,
        "detail": run.detail,
    }


def _validated_params(workflow: Workflow, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInputError.field("params", "must be an object of parameter values")
    try:
        validate_parameters(params_model(workflow), params)
    except ValidationError as exc:
        # Name each field as params.<name>, so a form can show it next to the right input.
        errors = [{**e, "field": f"params.{e['field']}"} for e in exc.errors]
        raise InvalidInputError(str(exc), errors) from None
    # Stored as given: defaults are applied at each firing, like any other submit.
    return params


def _policy(value: Any) -> str:
    if value not in OVERLAP_POLICIES:
        raise InvalidInputError.field("overlap_policy", f"must be one of {', '.join(OVERLAP_POLICIES)}")
    return str(value)


class ScheduleService:
    """Schedules and their firings. Changes are admin-only; organization members can read their own."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ----- reading ----------------------------------------------------------------------------------
    async def _active_workflow_ids(self, ids: builtins.list[str]) -> set[str]:
        if not ids:
            return set()
        stmt = select(col(Workflow.id)).where(col(Workflow.id).in_(ids), col(Workflow.is_active).is_(True))
        return set((await self.session.execute(stmt)).scalars())

    async def views(self, actor: Actor, rows: builtins.list[Schedule]) -> builtins.list[ScheduleView]:
        """API views of ``rows`` with their workflow's availability and organization name."""
        active = await self._active_workflow_ids(sorted({r.workflow_id for r in rows}))
        org_ids = sorted({r.organization_id for r in rows if r.organization_id})
        names: dict[str, str] = {}
        if org_ids:
            stmt = select(col(Organization.id), col(Organization.name)).where(col(Organization.id).in_(org_ids))
            names = {i: n for i, n in (await self.session.execute(stmt)).all()}
        statuses = await self._statuses(sorted({r.last_execution_id for r in rows if r.last_execution_id}))
        return [
            schedule_view(
                r, r.workflow_id in active, names.get(r.organization_id or ""), statuses.get(r.last_execution_id or "")
            )
            for r in rows
        ]

    async def _statuses(self, execution_ids: builtins.list[str]) -> dict[str, str]:
        if not execution_ids:
            return {}
        stmt = select(col(Execution.id), col(Execution.status)).where(col(Execution.id).in_(execution_ids))
        return {i: s for i, s in (await self.session.execute(stmt)).all()}

    async def recent_runs(
        self, actor: Actor, schedule_ids: builtins.list[str], per_schedule: int = 5
    ) -> dict[str, builtins.list[ScheduleRunView]]:
        """The latest firings of each visible schedule in ``schedule_ids`` (newest first), with execution status."""
        if not schedule_ids:
            return {}
        visible = {r.id for r in await self.list(actor)}
        ids = [i for i in schedule_ids if i in visible]
        stmt = (
            select(ScheduleRun, col(Execution.status))
            .outerjoin(Execution, col(Execution.id) == col(ScheduleRun.execution_id))
            .where(col(ScheduleRun.schedule_id).in_(ids))
            .order_by(col(ScheduleRun.scheduled_for).desc())
            .limit(per_schedule * len(ids) * 4)  # a busy schedule cannot starve the others of rows entirely
        )
        found: dict[str, builtins.list[ScheduleRunView]] = {i: [] for i in ids}
        for run, status in (await self.session.execute(stmt)).all():
            if len(found[run.schedule_id]) < per_schedule:
                found[run.schedule_id].append(run_view(run, status))
        return found

    async def list(self, actor: Actor, organization_id: str | None = None) -> builtins.list[Schedule]:
        """Schedules the actor may see: admins all (or one organization's), others their organization's."""
        stmt = select(Schedule).order_by(col(Schedule.workflow_name), col(Schedule.created_at))
        if not actor.is_superuser:
            if actor.acting_org_id is None:
                return []
            stmt = stmt.where(col(Schedule.organization_id) == actor.acting_org_id)
        elif organization_id:
            stmt = stmt.where(col(Schedule.organization_id) == organization_id)
        return list((await self.session.execute(stmt)).scalars())

    async def get(self, actor: Actor, schedule_id: str) -> Schedule:
        """One visible schedule (404 when it does not exist in the actor's scope)."""
        row = await self.session.get(Schedule, schedule_id) if isinstance(schedule_id, str) else None
        visible = row is not None and (
            actor.is_superuser or (row.organization_id is not None and row.organization_id == actor.acting_org_id)
        )
        if row is None or not visible:
            raise NotFoundError(f"Schedule {schedule_id!r} not found.")
        return row

    async def runs(
        self, actor: Actor, schedule_id: str, limit: int = 50
    ) -> builtins.list[tuple[ScheduleRun, str | None]]:
        """The latest firings of a visible schedule, newest first, with their execution's status."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_RUNS_LIMIT:
            raise InvalidInputError.field("limit", f"must be between 1 and {MAX_RUNS_LIMIT}")
        await self.get(actor, schedule_id)
        stmt = (
            select(ScheduleRun, col(Execution.status))
            .outerjoin(Execution, col(Execution.id) == col(ScheduleRun.execution_id))
            .where(col(ScheduleRun.schedule_id) == schedule_id)
            .order_by(col(ScheduleRun.scheduled_for).desc())
            .limit(limit)
        )
        return [(run, status) for run, status in (await self.session.execute(stmt)).all()]

    # ----- admin changes ------------------------------------------------------------------------------
    async def _workflow(self, name_or_id: Any) -> Workflow:
        if not isinstance(name_or_id, str) or not name_or_id.strip():
            raise InvalidInputError.field("workflow", "must name a workflow")
        stmt = select(Workflow).where(
            col(Workflow.kind) == "workflow",
            col(Workflow.is_active).is_(True),
            (col(Workflow.name) == name_or_id) | (col(Workflow.id) == name_or_id),
        )
        row = (await self.session.execute(stmt)).scalars().first()
        if row is None:
            raise InvalidInputError.field("workflow", f"workflow {name_or_id!r} not found")
        return row

    async def create(
        self,
        actor: Actor,
        workflow: str,
        cron: str,
        *,
        timezone: str = "UTC",
        params: dict[str, Any] | None = None,
        organization_id: str | None = None,
        enabled: bool = True,
        overlap_policy: str = "skip",
    ) -> Schedule:
        """Add a schedule (admins): a workflow, in one organization's scope (or global), with its own parameters.

        Raises:
            PermissionDeniedError: Not a platform admin.
            InvalidInputError: Unknown workflow or organization, bad cron/timezone/params/policy.
        """
        actor.require_admin("manage schedules")
        row_workflow = await self._workflow(workflow)
        organization_id = organization_id or None
        if organization_id is not None:
            if not isinstance(organization_id, str) or await self.session.get(Organization, organization_id) is None:
                raise InvalidInputError.field("organization_id", f"organization {organization_id!r} not found")
            if row_workflow.organization_id not in (None, organization_id):
                raise InvalidInputError.field("organization_id", "the workflow belongs to another organization")
        elif row_workflow.organization_id is not None:
            organization_id = row_workflow.organization_id
        enabled = require_bool(enabled, "enabled")
        now = utcnow()
        schedule = Schedule(
            workflow_id=row_workflow.id,
            workflow_name=row_workflow.name,
            organization_id=organization_id,
            source=SOURCE_ADMIN,
            cron=" ".join(str(cron).split()) if isinstance(cron, str) else cron,
            timezone=timezone.strip() if isinstance(timezone, str) else timezone,
            params=_validated_params(row_workflow, params),
            enabled=enabled,
            overlap_policy=_policy(overlap_policy),
            created_by=actor.user_id,
        )
        next_run = checked_next_run(schedule.cron, schedule.timezone, now)
        schedule.next_run_at = next_run if enabled else None
        self.session.add(schedule)
        await self.session.flush()
        await self._audit(actor, audit.SCHEDULE_CREATED, schedule, {"cron": schedule.cron, "enabled": enabled})
        return schedule

    async def _audit(self, actor: Actor, action: str, row: Schedule, details: dict[str, Any]) -> None:
        # Parameter values are not recorded (they may hold anything); the names of those that changed are.
        await audit.record(
            self.session,
            actor,
            action,
            "schedule",
            row.id,
            row.organization_id,
            {"workflow": row.workflow_name, **details},
        )

    async def update(self, actor: Actor, schedule_id: str, **updates: Any) -> Schedule:
        """Change cron, timezone, params, enabled or overlap policy (admins). Nothing changes on a 422."""
        actor.require_admin("manage schedules")
        reject_unknown_fields(updates, _UPDATABLE)
        row = await self.get(actor, schedule_id)
        cron = updates.get("cron", row.cron)
        cron = " ".join(cron.split()) if isinstance(cron, str) else cron
        timezone = updates.get("timezone", row.timezone)
        timezone = timezone.strip() if isinstance(timezone, str) else timezone
        enabled = require_bool(updates["enabled"], "enabled") if "enabled" in updates else row.enabled
        policy = _policy(updates["overlap_policy"]) if "overlap_policy" in updates else row.overlap_policy
        params = row.params
        if "params" in updates:
            params = _validated_params(await self._workflow(row.workflow_id), updates["params"])
        next_run = checked_next_run(cron, timezone, utcnow())  # validates before anything is written
        timing_changed = (cron, timezone, enabled) != (row.cron, row.timezone, row.enabled)
        row.cron, row.timezone, row.enabled = str(cron), str(timezone), enabled
        row.overlap_policy, row.params = policy, params
        if timing_changed:
            # Re-enabling starts from now: firings while disabled are not made up.
            row.next_run_at = next_run if enabled else None
        row.updated_at = utcnow()
        await self.session.flush()
        details = {"fields": sorted(updates), "cron": row.cron, "timezone": row.timezone, "enabled": row.enabled}
        await self._audit(actor, audit.SCHEDULE_UPDATED, row, details)
        return row

    async def delete(self, actor: Actor, schedule_id: str) -> None:
        """Remove a schedule and its firing records (admins).

        A schedule the code declares comes back at the next sync, so deleting one whose workflow still
        declares it is refused (disable it, or remove ``schedule=`` from the decorator).
        """
        actor.require_admin("manage schedules")
        row = await self.get(actor, schedule_id)
        if row.source == SOURCE_WORKSPACE:
            workflow = await self.session.get(Workflow, row.workflow_id)
            if workflow is not None and workflow.is_active and workflow.schedule:
                raise ConflictError(
                    f"The schedule of {row.workflow_name!r} is declared in its code: disable it instead, "
                    "or remove schedule= from the decorator."
                )
        await self.session.execute(delete(ScheduleRun).where(col(ScheduleRun.schedule_id) == row.id))
        await self.session.delete(row)
        await self.session.flush()
        await self._audit(actor, audit.SCHEDULE_DELETED, row, {"cron": row.cron})

    # ----- workspace sync -----------------------------------------------------------------------------
    async def sync_workspace(self, now: datetime | None = None) -> dict[str, int]:
        """Bring the declared schedules in line with the workflows' ``schedule=`` (after a workspace sync).

        A new declaration creates a global schedule; a changed one replaces the cron expression (an
        admin's edit is kept only while the code's declaration stays the same); a workflow that no
        longer declares one loses it. Schedules of workflows that disappeared are kept, not fired, so
        an import error does not throw away an admin's settings. An invalid declaration is reported
        as a workspace error and the schedule does not fire.

        Returns:
            Counts of ``added``, ``updated`` and ``removed`` schedules.
        """
        now = now or utcnow()
        workflows = list(
            (await self.session.execute(select(Workflow).where(col(Workflow.kind) == "workflow"))).scalars()
        )
        by_id = {w.id: w for w in workflows}
        declared = {
            row.workflow_id: row
            for row in (
                await self.session.execute(select(Schedule).where(col(Schedule.source) == SOURCE_WORKSPACE))
            ).scalars()
        }
        added = updated = removed = 0
        for workflow in workflows:
            if not workflow.is_active:
                continue
            row = declared.get(workflow.id)
            if not workflow.schedule:
                if row is not None:
                    await self.session.execute(delete(ScheduleRun).where(col(ScheduleRun.schedule_id) == row.id))
                    await self.session.delete(row)
                    removed += 1
                continue
            cron = " ".join(workflow.schedule.split())
            if row is None:
                row = Schedule(
                    workflow_id=workflow.id,
                    workflow_name=workflow.name,
                    organization_id=workflow.organization_id,
                    source=SOURCE_WORKSPACE,
                    declared_cron=cron,
                    cron=cron,
                )
                self.session.add(row)
                added += 1
            elif row.declared_cron != cron:
                row.declared_cron = row.cron = cron
                row.updated_at = now
                updated += 1
            else:
                continue
            try:
                next_run = checked_next_run(row.cron, row.timezone, now)
            except InvalidInputError as exc:
                row.next_run_at, row.last_outcome, row.last_detail = None, "invalid", str(exc)
                self.session.add(
                    WorkspaceError(
                        file=workflow.source_file or "?",
                        error=f"{workflow.name}: invalid schedule {cron!r}: {exc}",
                    )
                )
                continue
            row.next_run_at = next_run if row.enabled else None
            if row.last_outcome == "invalid":
                row.last_outcome = row.last_detail = None
        for row in declared.values():
            if row.workflow_id not in by_id:  # the workflow row itself is gone: nothing to keep
                await self.session.delete(row)
                removed += 1
        await self.session.flush()
        return {"added": added, "updated": updated, "removed": removed}

    # ----- engine bookkeeping -------------------------------------------------------------------------
    async def for_scheduler(self) -> builtins.list[Schedule]:
        """Enabled schedules of active workflows that can fire (a valid, future-bound expression)."""
        stmt = (
            select(Schedule)
            .join(Workflow, col(Workflow.id) == col(Schedule.workflow_id))
            .where(
                col(Schedule.enabled).is_(True),
                col(Workflow.is_active).is_(True),
                col(Schedule.next_run_at).is_not(None),
            )
        )
        return list((await self.session.execute(stmt)).scalars())

    async def workflow_active(self, row: Schedule) -> bool:
        """True when the schedule's workflow is still in the workspace."""
        return bool(await self._active_workflow_ids([row.workflow_id]))

    async def unfinished_execution(self, row: Schedule, now: datetime | None = None) -> str | None:
        """The id of this schedule's last execution if it is still pending or running.

        An execution still marked unfinished well past its own timeout is not counted: the worker pool
        ends every run at its timeout, so it was left behind by a server that stopped (it is marked
        failed when that server starts again), and must not block the schedule until then.
        """
        if not row.last_execution_id:
            return None
        stmt = select(
            col(Execution.status), col(Execution.started_at), col(Execution.created_at), col(Execution.timeout_seconds)
        ).where(col(Execution.id) == row.last_execution_id)
        found = (await self.session.execute(stmt)).first()
        if found is None or found[0] not in UNFINISHED:
            return None
        _status, started_at, created_at, timeout = found
        if (started_at or created_at) + timedelta(seconds=timeout + ORPHAN_MARGIN_SECONDS) < (now or utcnow()):
            return None
        return row.last_execution_id

    async def execution_status(self, execution_id: str) -> str | None:
        """Status of an execution (None when it does not exist)."""
        stmt = select(col(Execution.status)).where(col(Execution.id) == execution_id)
        return (await self.session.execute(stmt)).scalars().first()

    async def queued_runs(self, schedule_id: str | None = None) -> builtins.list[ScheduleRun]:
        """Firings waiting for the previous run to end (of one schedule, or all)."""
        stmt = select(ScheduleRun).where(col(ScheduleRun.outcome) == "queued").order_by(col(ScheduleRun.scheduled_for))
        if schedule_id is not None:
            stmt = stmt.where(col(ScheduleRun.schedule_id) == schedule_id)
        return list((await self.session.execute(stmt)).scalars())

    async def overdue(self, now: datetime) -> builtins.list[Schedule]:
        """Enabled schedules of active workflows whose expected firing is already past (missed while down)."""
        return [row for row in await self.for_scheduler() if row.next_run_at is not None and row.next_run_at <= now]

    def record(
        self,
        row: Schedule,
        scheduled_for: datetime,
        outcome: str,
        *,
        detail: str | None = None,
        execution_id: str | None = None,
        next_run_at: datetime | None = None,
        touch_last_run: bool = True,
    ) -> ScheduleRun:
        """Add the record of one firing and reflect it on the schedule (flushed by the caller's commit)."""
        run = ScheduleRun(
            schedule_id=row.id,
            scheduled_for=scheduled_for,
            outcome=outcome,
            detail=detail,
            execution_id=execution_id,
        )
        self.session.add(run)
        if touch_last_run:
            row.last_run_at = scheduled_for
        row.last_outcome, row.last_detail = outcome, detail
        if execution_id:
            row.last_execution_id = execution_id
        if next_run_at is not None:
            row.next_run_at = next_run_at
        return run
