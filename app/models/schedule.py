"""Cron schedules of workflows and the record of each firing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.base import JSONType, UTCDateTime, new_id, utcnow


class Schedule(SQLModel, table=True):
    """A cron schedule that runs one workflow in one scope.

    ``source`` is ``workspace`` for the schedule a ``@workflow(schedule=...)`` declares (one per
    workflow, global scope, kept in step with the code by the workspace sync) or ``admin`` for one a
    platform admin added (any scope, own parameters). ``declared_cron`` remembers what the code
    declared, so an admin's edit of ``cron`` survives syncs until the code changes its schedule.
    ``next_run_at`` is the next firing the scheduler expects; on start-up a value in the past means
    firings were missed while no server was running.
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflow.id", index=True, max_length=36)
    workflow_name: str = Field(max_length=200)
    organization_id: str | None = Field(default=None, foreign_key="organization.id", index=True, max_length=36)
    source: str = Field(default="admin", max_length=20)
    declared_cron: str | None = Field(default=None, max_length=200)
    cron: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    enabled: bool = True
    overlap_policy: str = Field(default="skip", max_length=10)
    next_run_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_run_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_outcome: str | None = Field(default=None, max_length=20)
    last_execution_id: str | None = Field(default=None, max_length=36)
    last_detail: str | None = None
    created_by: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ScheduleRun(SQLModel, table=True):
    """One firing of a schedule: submitted (with its execution), skipped, queued, missed or failed.

    The unique ``(schedule_id, scheduled_for)`` pair is the claim on a firing: a second process
    that tried to fire the same slot fails to insert it and does nothing.
    """

    __tablename__ = "schedule_run"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_for", name="uq_schedule_run_slot"),
        Index("ix_schedule_run_schedule_fired", "schedule_id", "fired_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    schedule_id: str = Field(foreign_key="schedule.id", ondelete="CASCADE", max_length=36)
    scheduled_for: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    fired_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    outcome: str = Field(max_length=20)
    execution_id: str | None = Field(default=None, max_length=36)
    detail: str | None = None
