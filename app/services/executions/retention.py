"""Retention of executions and their logs: finished runs older than N days are deleted in small batches.

``BIFROST_EXECUTION_RETENTION_DAYS`` is the platform's default (0 keeps everything); an organization may
have its own (``execution_retention``, set on the admin page ``/admin/data``; 0 keeps that
organization's history forever). Only finished runs (Completed, Failed, Cancelled) are deleted, found
through the ``(status, created_at, id)`` and ``(organization_id, status, created_at, id)`` indexes.

Each batch is its own short transaction: at most :data:`LOG_BATCH` log lines, then the batch's
executions with whatever else refers to them (approvals...), and the loop yields between batches, so
pruning a large backlog never holds SQLite's one writer (or the event loop) for long and runs go on
meanwhile. Two servers pruning at once delete the same rows; both are harmless.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel, col

from app.db import transaction
from app.models import Execution, ExecutionLog, Organization
from app.models.base import utcnow
from app.models.execution import ExecutionRetention
from app.services.actor import Actor
from app.services.errors import InvalidInputError, NotFoundError
from bifrost.enums import ExecutionStatus

log = logging.getLogger(__name__)

BATCH = 500
LOG_BATCH = 5000
MAX_DAYS = 36_500
_FINISHED = (ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)


@dataclass
class PruneReport:
    """What one pruning pass did (shown on the admin page)."""

    started_at: datetime
    finished_at: datetime | None = None
    executions: int = 0
    log_lines: int = 0
    batches: int = 0
    # "default" or an organization id -> the cutoff applied (ISO).
    cutoffs: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _referrers() -> list[Any]:
    """Columns of other tables that refer to ``execution.id`` by foreign key (logs apart)."""
    found = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name in ("execution", "execution_log"):
            continue
        found += [fk.parent for fk in table.foreign_keys if fk.column.table.name == "execution"]
    return found


async def _prune_batch(session_factory: async_sessionmaker[AsyncSession], where: Any, report: PruneReport) -> int:
    """Delete up to :data:`BATCH` finished executions matching ``where`` (and their logs); returns how many."""
    async with transaction(session_factory) as session:
        # No ORDER BY: any rows past the cutoff will do, and a "status IN (...)" range on
        # (status, created_at, id) then stops after one batch (sorted, it read the whole backlog first).
        stmt = select(col(Execution.id)).where(where, col(Execution.status).in_(_FINISHED)).limit(BATCH)
        ids = list((await session.execute(stmt)).scalars())
    if not ids:
        return 0
    while True:  # the logs first, a bounded slice per transaction (a run may hold 100,000 lines)
        async with transaction(session_factory) as session:
            lines = select(col(ExecutionLog.id)).where(col(ExecutionLog.execution_id).in_(ids)).limit(LOG_BATCH)
            result = await session.execute(delete(ExecutionLog).where(col(ExecutionLog.id).in_(lines)))
            deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        report.log_lines += deleted
        if deleted < LOG_BATCH:
            break
        await asyncio.sleep(0)
    async with transaction(session_factory) as session:
        for column in _referrers():
            await session.execute(delete(column.table).where(column.in_(ids)))
        # A run that came back to life meanwhile (none should) is left alone by the status test.
        result = await session.execute(
            delete(Execution).where(col(Execution.id).in_(ids), col(Execution.status).in_(_FINISHED))
        )
        report.executions += int(result.rowcount or 0)  # type: ignore[attr-defined]
    report.batches += 1
    return len(ids)


async def prune(
    sessions: async_sessionmaker[AsyncSession],
    default_days: float,
    *,
    now: datetime | None = None,
    pause_seconds: float = 0.02,
) -> PruneReport:
    """Delete the finished executions (and logs) past their organization's retention, or the default's."""
    moment = now or utcnow()
    report = PruneReport(started_at=moment)
    async with transaction(sessions) as session:
        overrides = {row.organization_id: row.retention_days for row in await overrides_of(session)}
    scopes: list[tuple[str, float, Any]] = [
        (org_id, days, col(Execution.organization_id) == org_id) for org_id, days in overrides.items() if days > 0
    ]
    if default_days > 0:
        owner = col(Execution.organization_id)
        others = owner.is_(None) | owner.not_in(list(overrides)) if overrides else True
        scopes.append(("default", default_days, others))
    for name, days, where in scopes:
        cutoff = moment - timedelta(days=days)
        report.cutoffs[name] = cutoff.isoformat()
        while True:
            if await _prune_batch(sessions, (col(Execution.created_at) < cutoff) & where, report) < BATCH:
                break
            await asyncio.sleep(pause_seconds)  # let runs and requests in between batches
    report.finished_at = utcnow()
    return report


# ----- per-organization settings -----------------------------------------------------------------------
async def overrides_of(session: AsyncSession) -> builtins.list[ExecutionRetention]:
    """Every organization's own retention."""
    return list((await session.execute(select(ExecutionRetention))).scalars())


async def set_override(session: AsyncSession, actor: Actor, organization_id: str, days: Any) -> float | None:
    """Set (a number of days, 0 = forever) or clear (None or "") an organization's own retention.

    Raises:
        PermissionDeniedError: Not a platform admin.
        NotFoundError: No such organization.
        InvalidInputError: ``days`` is not a number of days between 0 and 36,500.
    """
    actor.require_admin("change retention")
    if await session.get(Organization, organization_id) is None:
        raise NotFoundError(f"Organization {organization_id!r} not found.")
    row = await session.get(ExecutionRetention, organization_id)
    if days is None or days == "":
        if row is not None:
            await session.delete(row)
        return None
    try:
        value = float(days)
    except (TypeError, ValueError):
        raise InvalidInputError.field("days", f"not a number of days: {str(days)[:40]!r}") from None
    if not 0 <= value <= MAX_DAYS:
        raise InvalidInputError.field("days", f"must be between 0 (keep forever) and {MAX_DAYS}")
    if row is None:
        session.add(ExecutionRetention(organization_id=organization_id, retention_days=value))
    else:
        row.retention_days, row.updated_at = value, utcnow()
    await session.flush()
    return value


class ExecutionPruner:
    """Runs :func:`prune` once the platform has started, then every ``interval_seconds``, while it runs.

    Args:
        sessions: Session factory.
        default_days: ``BIFROST_EXECUTION_RETENTION_DAYS``.
        interval_seconds: Time between two passes.
        running: Tells whether the platform still runs (the loop ends when it stops).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        default_days: float,
        interval_seconds: float,
        running: Callable[[], bool],
    ) -> None:
        self.sessions = sessions
        self.default_days = default_days
        self.interval_seconds = interval_seconds
        self.running = running
        self.last: PruneReport | None = None
        self.total_executions = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def attach(cls, platform: Any) -> ExecutionPruner:
        """Create and start the pruner of a starting platform (it ends by itself after ``platform.stop``)."""
        settings = platform.settings
        pruner = cls(
            platform.sessions,
            settings.execution_retention_days,
            settings.execution_prune_interval_seconds,
            lambda: bool(platform.started),
        )
        pruner._task = asyncio.create_task(pruner._loop(), name="bifrost-execution-retention")
        return pruner

    async def run_once(self) -> PruneReport:
        """One pass now (the loop's, or the admin page's "prune now")."""
        report = await prune(self.sessions, self.default_days)
        self.last = report
        self.total_executions += report.executions
        if report.executions:
            log.info("retention: deleted %d execution(s), %d log line(s)", report.executions, report.log_lines)
        return report

    async def _loop(self) -> None:
        # Polled, not awaited on an event: the platform has none, and a check a second costs nothing.
        next_pass = 0.0
        started = False
        while True:
            running = self.running()
            if started and not running:
                return  # the platform stopped
            started = started or running
            if running and time.monotonic() >= next_pass:
                try:
                    await self.run_once()
                except Exception as exc:
                    self.last = PruneReport(started_at=utcnow(), finished_at=utcnow(), error=str(exc)[:500])
                    log.exception("retention: pruning failed; trying again in %s s", self.interval_seconds)
                next_pass = time.monotonic() + self.interval_seconds
            await asyncio.sleep(0.5 if not started else 1.0)
