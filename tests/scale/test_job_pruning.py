"""Ended procrastinate jobs are pruned (app/engine/job_pruning.py) on a real Postgres database.

Jobs in every state, with events of different ages: only ended jobs whose newest event is older than
the window go, with their events; live jobs, recent ended ones and execution rows stay; two pruners at
once do the work once; a sweeper prunes at its start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from app.db import create_engine, transaction
from app.engine.events import EventHub
from app.engine.job_pruning import _LOCK, prune_finished_jobs
from app.engine.lost_nodes import LostNodeSweeper
from app.engine.queue_schema import QUEUE
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="pruning the queue needs BIFROST_TEST_POSTGRES_URL")


async def _job(sessions: Any, status: str, age_hours: float | None, lock: str) -> int:
    """A job in ``status`` whose events (procrastinate's own, at insert, plus one at its end) are ``age_hours`` old."""
    async with transaction(sessions) as session:
        job_id = int(
            await session.scalar(
                text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status)"
                    " VALUES (:queue, 'other', :lock, '{}', 'todo') RETURNING id"
                ),
                {"queue": QUEUE, "lock": lock},
            )
        )
        if status != "todo":
            await session.execute(
                text("UPDATE procrastinate_jobs SET status = CAST(:status AS procrastinate_job_status) WHERE id = :id"),
                {"status": status, "id": job_id},
            )
        if age_hours is None:
            await session.execute(text("DELETE FROM procrastinate_events WHERE job_id = :id"), {"id": job_id})
        else:
            await session.execute(
                text("UPDATE procrastinate_events SET at = NOW() - make_interval(secs => :s) WHERE job_id = :id"),
                {"s": age_hours * 3600, "id": job_id},
            )
    return job_id


async def _jobs(sessions: Any) -> dict[int, str]:
    async with transaction(sessions) as session:
        rows = (await session.execute(text("SELECT id, status::text FROM procrastinate_jobs"))).all()
    return {row[0]: row[1] for row in rows}


async def _events_of(sessions: Any, job_ids: list[int]) -> int:
    async with transaction(sessions) as session:
        found = await session.scalar(
            text("SELECT count(*) FROM procrastinate_events WHERE job_id = ANY(:ids)"), {"ids": job_ids}
        )
    return int(found or 0)


async def test_ended_jobs_past_the_window_go_with_their_events_and_nothing_else(sessions: Any) -> None:
    old = {
        status: await _job(sessions, status, 3, f"old-{status}")
        for status in ("succeeded", "failed", "cancelled", "aborted")
    }
    silent = await _job(sessions, "failed", None, "silent")  # no event at all: counts as old
    recent = await _job(sessions, "failed", 0.1, "recent")
    live = {status: await _job(sessions, status, 3, f"live-{status}") for status in ("todo", "doing")}
    assert await _events_of(sessions, list(old.values())) > 0
    assert await prune_finished_jobs(sessions, keep_seconds=3600, batch=2) == 5  # three batches
    left = await _jobs(sessions)
    assert set(left) == {recent, *live.values()}
    assert await _events_of(sessions, [*old.values(), silent]) == 0
    assert await _events_of(sessions, [recent]) > 0
    assert await prune_finished_jobs(sessions, keep_seconds=3600) == 0
    assert await prune_finished_jobs(sessions, keep_seconds=60) == 1  # a shorter window takes the recent one
    assert set(await _jobs(sessions)) == set(live.values())


async def test_a_pruner_skips_while_another_process_prunes(sessions: Any, database: str) -> None:
    await _job(sessions, "failed", 3, "old")
    engine = create_engine(database)
    try:
        async with engine.connect() as other, other.begin():
            assert await other.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK})
            assert await prune_finished_jobs(sessions, keep_seconds=3600) is None
        assert await prune_finished_jobs(sessions, keep_seconds=3600) == 1
    finally:
        await engine.dispose()


async def test_the_lost_node_sweeper_prunes_at_its_start(sessions: Any) -> None:
    old = await _job(sessions, "cancelled", 3, "old")
    sweeper = LostNodeSweeper(sessions, EventHub(), lost_seconds=3, interval=0.2, keep_seconds=3600)
    sweeper.start()
    try:
        for _ in range(100):
            if old not in await _jobs(sessions):
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert old not in await _jobs(sessions)
