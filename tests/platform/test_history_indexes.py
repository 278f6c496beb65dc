"""History lists at any size: every list and filter reads an index in its order (no scan, no sort),
pages by cursor give exactly the rows of the full sorted list, on SQLite and on Postgres.

Every test only reads: they share one seeded database per dialect, which refuses writes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from app.db import create_engine, read_transaction, session_factory, transaction, upgrade_database
from app.models import Execution
from app.models.schedule import ScheduleRun
from app.services.actor import Actor
from app.services.errors import InvalidInputError
from app.services.executions.history import list_statement, recent_statements
from app.services.executions.service import ExecutionService
from tests.platform.plans_support import assert_indexed, refuse_writes, run_and_explain, shared_database

ORGS = ["org-a", "org-b", "org-c"]
USERS = {"u1": "org-a", "u2": "org-a", "u3": "org-b", "u4": "org-c"}
WORKFLOWS = ["sync_users", "backup", "report", "cleanup", "never_alone"]
STATUSES = ["Completed"] * 6 + ["Failed", "Running", "Cancelled"]
ROWS = 1500

ADMIN = Actor("admin", "admin@x", "Admin", None, True, None)
ADMIN_IN_B = Actor("admin", "admin@x", "Admin", None, True, "org-b")
USER = Actor("u1", "u1@x", "U1", "org-a", False, "org-a")


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(17)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for i in range(ROWS):
        user = rng.choice(list(USERS))
        rows.append(
            {
                "id": f"{rng.getrandbits(64):016x}-{i:05d}",
                "workflow_id": "w",
                "workflow_name": rng.choice(WORKFLOWS[:4]),
                "kind": "data_provider" if i % 10 == 3 else "workflow",
                "organization_id": USERS[user],
                "executed_by": user,
                "status": rng.choice(STATUSES),
                "input_data": {},
                # Every 7 rows share one instant: the id breaks the tie, and cursors must respect it.
                "created_at": start + timedelta(seconds=i // 7),
            }
        )
    return rows


# What was seeded, read-only here too (the tests compare the database's answers with it).
SEEDED: tuple[Mapping[str, Any], ...] = tuple(MappingProxyType(row) for row in _rows())


def _seed(database_url: str) -> None:
    upgrade_database(database_url)
    rows = [dict(row) for row in SEEDED]

    async def seed() -> None:
        engine = create_engine(database_url)
        async with transaction(session_factory(engine)) as session:
            await session.execute(insert(Execution), rows)
        if engine.dialect.name == "postgresql":
            # The tests have always read a table without statistics (each seeded its own just before):
            # keep autovacuum (when the server runs it) from analyzing this one while the module reads it.
            async with engine.begin() as connection:
                await connection.execute(text("ALTER TABLE execution SET (autovacuum_enabled = false)"))
        await engine.dispose()

    asyncio.run(seed())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seeded database every test of this module reads (one per dialect); it refuses writes."""
    with shared_database(request.param, tmp_path_factory.mktemp("history"), _seed) as url:
        yield url


@pytest.fixture
def history(shared_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncEngine, tuple[Mapping[str, Any], ...]]]:
    """An engine of the test's own on the module's seeded database, and the rows seeded."""
    loop = asyncio.new_event_loop()
    engine = create_engine(shared_url)
    refuse_writes(engine)
    yield loop, engine, SEEDED
    loop.run_until_complete(engine.dispose())
    loop.close()


def _expected(rows: Sequence[Mapping[str, Any]], actor: Actor, **filters: Any) -> list[str]:
    def visible(row: Mapping[str, Any]) -> bool:
        if actor.is_superuser:
            return actor.acting_org_id is None or row["organization_id"] == actor.acting_org_id
        return row["organization_id"] == actor.acting_org_id and row["executed_by"] == actor.user_id

    keep = [
        r
        for r in rows
        if visible(r)
        and all(r[{"workflow_name": "workflow_name"}.get(k, k)] == v for k, v in filters.items() if v is not None)
    ]
    keep.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [r["id"] for r in keep]


CASES = [
    # (actor, filters, the index that must serve it)
    (ADMIN, {}, "ix_execution_created"),
    (ADMIN, {"status": "Failed"}, "ix_execution_status_created"),
    (ADMIN, {"workflow_name": "backup"}, "ix_execution_workflow_created"),
    (ADMIN_IN_B, {}, "ix_execution_org_created"),
    (ADMIN_IN_B, {"status": "Failed"}, "ix_execution_org_status_created"),
    (ADMIN_IN_B, {"workflow_name": "report"}, "ix_execution_org_workflow_created"),
    # One user's runs: either user index serves (Postgres may take the narrower one and filter the org).
    (USER, {}, "ix_execution_(org_)?user_created"),
    (USER, {"kind": "workflow"}, "ix_execution_(org_)?user_created"),
    (ADMIN, {"executed_by": "u3"}, "ix_execution_user_created"),
    (ADMIN_IN_B, {"executed_by": "u3"}, "ix_execution_(org_)?user_created"),
]


@pytest.mark.parametrize(("actor", "filters", "index"), CASES)
def test_each_list_reads_its_index_in_order(history: Any, actor: Actor, filters: dict[str, Any], index: str) -> None:
    loop, engine, rows = history

    async def check() -> None:
        async with read_transaction(session_factory(engine)) as session:
            found, plan = await run_and_explain(session, list_statement(actor, limit=50, **filters))
            assert_indexed(plan, "execution", engine.dialect.name, index)
            assert [r[0].id for r in found] == _expected(rows, actor, **filters)[:50]
            # A page after a cursor reads the same index, bounded by the cursor.
            _, following = await ExecutionService(session).list_page(actor, limit=10, **filters)
            assert following is not None
            found, plan = await run_and_explain(session, list_statement(actor, limit=10, cursor=following, **filters))
            assert_indexed(plan, "execution", engine.dialect.name, index)
            assert [r[0].id for r in found] == _expected(rows, actor, **filters)[10:20]

    loop.run_until_complete(check())


def test_cursor_pages_walk_the_whole_history_both_ways(history: Any) -> None:
    """Pages by cursor (older) and back by ``before`` (newer) give exactly the sorted list, ties included."""
    loop, engine, rows = history

    async def walk(actor: Actor, **filters: Any) -> None:
        expected = _expected(rows, actor, **filters)
        async with read_transaction(session_factory(engine)) as session:
            service = ExecutionService(session)
            pages: list[list[str]] = []
            cursor = None
            while True:
                page, cursor = await service.list_page(actor, limit=37, cursor=cursor, **filters)
                pages.append([e.id for e in page])
                if cursor is None:
                    break
            assert [i for p in pages for i in p] == expected
            # The same pages by offset.
            assert [e.id for e in await service.list(actor, limit=37, offset=74, **filters)] == expected[74:111]
            # Back from the last page toward the newest with ``before``.
            back: list[list[str]] = [pages[-1]]
            last = await service.list(actor, limit=37, offset=37 * (len(pages) - 1), **filters)
            before: str | None = service_cursor(last[0])
            while before is not None:
                page, before = await service.list_page(actor, limit=37, before=before, **filters)
                back.insert(0, [e.id for e in page])
            assert [i for p in back for i in p] == expected

    def service_cursor(execution: Execution) -> str:
        from app.services.executions.history import encode_cursor

        return encode_cursor(execution)

    for actor, filters, _ in CASES:
        loop.run_until_complete(walk(actor, **filters))


def test_last_runs_per_workflow_read_three_rows_each(history: Any) -> None:
    loop, engine, rows = history

    async def check(actor: Actor) -> None:
        async with read_transaction(session_factory(engine)) as session:
            (union,) = recent_statements(actor, WORKFLOWS, 3)
            _, plan = await run_and_explain(session, select(Execution).from_statement(union))
            assert_indexed(plan, "execution", engine.dialect.name)
            recent = await ExecutionService(session).recent_by_workflow(actor, WORKFLOWS, 3)
        assert {name: [e.id for e in runs] for name, runs in recent.items()} == {
            name: _expected(rows, actor, workflow_name=name)[:3] for name in WORKFLOWS
        }

    for actor in (ADMIN, ADMIN_IN_B, USER):
        loop.run_until_complete(check(actor))


def test_schedule_runs_read_their_index(history: Any) -> None:
    """The schedule page's runs: the newest firings of one schedule, by the unique (schedule, slot) index."""
    loop, engine, _ = history

    async def check() -> None:
        async with read_transaction(session_factory(engine)) as session:
            stmt = (
                select(ScheduleRun, col(Execution.status))
                .outerjoin(Execution, col(Execution.id) == col(ScheduleRun.execution_id))
                .where(col(ScheduleRun.schedule_id) == "s1")
                .order_by(col(ScheduleRun.scheduled_for).desc())
                .limit(50)
            )
            _, plan = await run_and_explain(session, stmt)
        assert_indexed(plan, "schedule_run", engine.dialect.name)
        assert_indexed(plan, "execution", engine.dialect.name)

    loop.run_until_complete(check())


def test_bad_cursors_are_refused_by_name(history: Any) -> None:
    loop, engine, _ = history

    async def check() -> None:
        async with read_transaction(session_factory(engine)) as session:
            service = ExecutionService(session)
            for kwargs, field in (
                ({"cursor": "not-a-cursor"}, "cursor"),
                ({"cursor": "WyJ4IiwxXQ"}, "cursor"),  # ["x",1]
                ({"before": "%%%"}, "cursor"),
                ({"cursor": None, "offset": -1}, "offset"),
                ({"limit": 0}, "limit"),
                ({"kind": "script"}, "kind"),
            ):
                with pytest.raises(InvalidInputError) as caught:
                    await service.list_page(ADMIN, **kwargs)
                assert caught.value.errors[0]["field"] == field
            _, following = await service.list_page(ADMIN, limit=5)
            with pytest.raises(InvalidInputError, match="not both"):
                await service.list(ADMIN, cursor=following, offset=5)

    loop.run_until_complete(check())
