"""Execution retention: the default and per-organization settings delete exactly the finished runs past
their cutoff (with their logs), in batches that read the history indexes; the admin page sets and shows it."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlmodel import col

from app.db import create_engine, session_factory, transaction, upgrade_database
from app.models import Execution, ExecutionLog, Organization
from app.models.base import utcnow
from app.services.actor import Actor
from app.services.errors import InvalidInputError, PermissionDeniedError
from app.services.executions import retention
from tests.platform.pages_support import admin, alice, start_pages_world
from tests.platform.plans_support import Captured, assert_indexed, explain

ADMIN = Actor("admin", "admin@x", "Admin", None, True, None)
USER = Actor("u", "u@x", "U", "org-a", False, "org-a")
NOW = utcnow()


def _runs() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for org in ("org-a", "org-b", "org-c", None):
        for age in (1, 5, 15, 45, 400):
            for status in ("Completed", "Failed", "Running"):
                rows.append(
                    {
                        "id": f"{org or 'global'}-{age:03d}-{status}",
                        "workflow_id": "w",
                        "workflow_name": "job",
                        "organization_id": org,
                        "executed_by": "u",
                        "status": status,
                        "input_data": {},
                        "created_at": NOW - timedelta(days=age, minutes=1),
                    }
                )
    return rows


@pytest.fixture
def history(database_url: str) -> Any:
    upgrade_database(database_url)
    rows = _runs()
    # More log lines than one delete takes, on one run that goes.
    lines = [
        {"execution_id": "org-c-045-Completed", "seq": n, "timestamp": NOW, "level": "INFO", "message": "x"}
        for n in range(retention.LOG_BATCH + 10)
    ] + [{"execution_id": "org-c-001-Completed", "seq": 0, "timestamp": NOW, "level": "INFO", "message": "kept"}]

    async def seed() -> Any:
        engine = create_engine(database_url)
        async with transaction(session_factory(engine)) as session:
            for org in ("org-a", "org-b", "org-c"):
                session.add(Organization(id=org, name=org))
            await session.flush()
            await session.execute(insert(Execution), rows)
            await session.execute(insert(ExecutionLog), lines)
        return engine

    loop = asyncio.new_event_loop()
    engine = loop.run_until_complete(seed())
    yield loop, engine, rows
    loop.run_until_complete(engine.dispose())
    loop.close()


def test_default_and_organization_retention_delete_exactly_what_is_past(history: Any) -> None:
    loop, engine, rows = history
    sessions = session_factory(engine)

    async def check() -> None:
        async with transaction(sessions) as session:
            assert await retention.set_override(session, ADMIN, "org-a", "10") == 10.0
            assert await retention.set_override(session, ADMIN, "org-b", 0) == 0.0  # forever
            with pytest.raises(InvalidInputError) as caught:
                await retention.set_override(session, ADMIN, "org-c", "ten")
            assert caught.value.errors[0]["field"] == "days"
            with pytest.raises(PermissionDeniedError):
                await retention.set_override(session, USER, "org-a", 1)
        report = await retention.prune(sessions, 30, now=NOW)
        expected_gone = {
            r["id"]
            for r in rows
            if r["status"] != "Running"
            and (
                (r["organization_id"] == "org-a" and r["created_at"] < NOW - timedelta(days=10))
                or (r["organization_id"] in ("org-c", None) and r["created_at"] < NOW - timedelta(days=30))
            )
        }
        async with transaction(sessions) as session:
            left = set((await session.execute(select(Execution.id))).scalars())
            logs = (
                await session.execute(select(ExecutionLog.execution_id, func.count()).group_by("execution_id"))
            ).all()
        assert left == {r["id"] for r in rows} - expected_gone
        assert report.executions == len(expected_gone) and report.log_lines == retention.LOG_BATCH + 10
        assert dict(logs) == {"org-c-001-Completed": 1}
        assert set(report.cutoffs) == {"org-a", "default"}
        # Clearing an override puts the organization back on the default.
        async with transaction(sessions) as session:
            assert await retention.set_override(session, ADMIN, "org-b", "") is None
        again = await retention.prune(sessions, 30, now=NOW)
        assert again.executions == 4  # org-b's finished runs of 45 and 400 days

    loop.run_until_complete(check())


def test_pruning_batches_read_the_history_indexes(history: Any) -> None:
    loop, engine, _ = history
    sessions = session_factory(engine)

    async def check() -> None:
        async with transaction(sessions) as session:
            await retention.set_override(session, ADMIN, "org-a", 10)
        async with transaction(sessions) as session:
            with Captured(session) as seen:
                cutoff = NOW - timedelta(days=30)
                owner, created = col(Execution.organization_id), col(Execution.created_at)
                for where in (
                    (created < cutoff) & (owner == "org-a"),
                    (created < cutoff) & (owner.is_(None) | owner.not_in(["org-a"])),
                ):
                    stmt = (
                        select(col(Execution.id))
                        .where(where, col(Execution.status).in_(retention._FINISHED))
                        .limit(retention.BATCH)
                    )
                    await session.execute(stmt)
            for statement, parameters in seen.statements:
                plan = await explain(session, statement, parameters)
                assert_indexed(plan, "execution", engine.dialect.name)

    loop.run_until_complete(check())


def test_admin_page_sets_and_reports_retention(tmp_path: Path) -> None:
    world = start_pages_world(tmp_path)
    try:
        with admin(world) as page:
            shown = page.get("/admin/data")
            assert shown.status_code == 200 and "Execution history retention" in shown.text
            assert "kept forever" in shown.text
            saved = page.post("/admin/data/retention", {"organization_id": world.org_a, "days": "7"})
            assert saved.status_code == 303
            assert re.search(r'id="days-' + world.org_a + r'"[^>]*\n?[^>]*value="7"', page.get("/admin/data").text)
            bad = page.post("/admin/data/retention", {"organization_id": world.org_a, "days": "-1"})
            assert bad.status_code == 303 and "between 0" in page.get("/admin/data").text
            pruned = page.post("/admin/data/prune")
            assert pruned.status_code == 303
            report = page.get("/admin/data").text
            assert "Pruned 0 execution(s)" in report and 'id="prune-report"' in report
        with alice(world) as page:
            assert page.get("/admin/data").status_code == 403
            assert page.post("/admin/data/prune").status_code == 403
    finally:
        world.server.stop()
