"""A node's two statements per run (app/engine/node_statements.py) on a real Postgres database.

TAKE: procrastinate's fetch and the Running mark in one durable statement, with the same worker
context the service builds. FINISH: the outcome, its log lines and the servers' end NOTIFY in one
statement, which never overwrites an ended run.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from app.engine.node import job_pool, take_pool
from app.engine.node_statements import FINISH, TAKE, context_of, finish_params, take
from app.engine.queue_schema import DONE_CHANNEL, QUEUE, conninfo, done_payload, parse_done
from app.models import Execution, ExecutionLog, Organization, User
from app.services.executions.service import ExecutionService
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the queue's statements need BIFROST_TEST_POSTGRES_URL")


async def _connect(database: str) -> Any:
    import psycopg

    return await psycopg.AsyncConnection.connect(conninfo(database), autocommit=True)


def _params(token_hash: str = "h" * 64, node: str = "node-a") -> dict[str, Any]:
    return {
        "queues": [QUEUE],
        "worker_id": None,
        "started_at": datetime.now(UTC),
        "token_hash": token_hash,
        "node": node,
    }


async def _take(database: str, token_hash: str = "h" * 64, node: str = "node-a") -> dict[str, Any]:
    """What take() returns, as a row of NULL job columns when there is no job (as TAKE itself)."""
    from psycopg.rows import dict_row

    async with await _connect(database) as connection:
        connection.row_factory = dict_row
        row = await take(connection, _params(token_hash, node))
    return row if row is not None else {"id": None}


async def _job_count(connection: Any, job_id: int) -> int:
    found = await (
        await connection.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", (job_id,))
    ).fetchone()
    return int(found[0])


async def _add_run(sessions: Any, *, with_user: bool = True, with_org: bool = True) -> str:
    async with sessions() as session:
        org = Organization(name="Contoso", domain="contoso.example") if with_org else None
        user = User(email="zoe@contoso.example", name="Zoë", is_superuser=True) if with_user else None
        session.add_all([x for x in (org, user) if x is not None])
        await session.flush()
        execution = Execution(
            workflow_id="w1",
            workflow_name="noop",
            organization_id=org.id if org else None,
            executed_by=user.id if user else "gone-user",
            executed_by_name="Deleted Person",
            input_data={"n": 1, "name": "Zoë"},
            timeout_seconds=42,
        )
        session.add(execution)
        await session.commit()
        return execution.id


async def _row(sessions: Any, execution_id: str) -> Execution:
    async with sessions() as session:
        found = await session.get(Execution, execution_id)
        assert found is not None
        return found


@pytest.mark.parametrize(("with_user", "with_org"), [(True, True), (False, False)])
async def test_take_marks_the_run_running_with_the_services_context(
    database: str, sessions: Any, with_user: bool, with_org: bool
) -> None:
    execution_id = await _add_run(sessions, with_user=with_user, with_org=with_org)

    row = await _take(database, token_hash="t" * 64, node="node-a")

    assert row["id"] is not None and row["status"] == "doing" and row["args"] == {"execution_id": execution_id}
    assert row["run_id"] == execution_id and row["run_input_data"] == {"n": 1, "name": "Zoë"}
    assert row["run_timeout_seconds"] == 42
    stored = await _row(sessions, execution_id)
    assert (stored.status, stored.node, stored.sdk_token_hash) == ("Running", "node-a", "t" * 64)
    assert stored.started_at is not None
    async with sessions() as session:
        expected = await ExecutionService(session).context_for(stored)
    assert context_of(row) == expected
    # The queue is empty now: the fetch finds nothing, and marks nothing.
    assert (await _take(database))["id"] is None


async def test_take_fetches_the_job_of_a_cancelled_run_but_leaves_the_run_alone(database: str, sessions: Any) -> None:
    execution_id = await _add_run(sessions)
    async with sessions() as session:
        await session.execute(update(Execution).where(Execution.id == execution_id).values(status="Cancelled"))  # type: ignore[arg-type]
        await session.commit()

    row = await _take(database)

    assert row["id"] is not None and row["run_id"] is None  # the job ends; nothing runs
    stored = await _row(sessions, execution_id)
    assert (stored.status, stored.node, stored.sdk_token_hash) == ("Cancelled", None, None)


async def test_finish_stores_outcome_and_logs_and_notifies_once(database: str, sessions: Any) -> None:
    execution_id = await _add_run(sessions)
    job_id = (await _take(database))["id"]
    started = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    outcome = {
        "status": "Completed",
        "result": {"ok": True, "name": "Zoë"},
        "error_message": None,
        "error_type": None,
        "error_traceback": None,
        "user_error": False,
        "started_at": started,
        "completed_at": started + timedelta(milliseconds=3),
        "duration_ms": 3,
    }
    logs = [
        {"seq": 0, "timestamp": started, "level": "INFO", "logger": "wf", "message": "héllo"},
        {"seq": 1, "timestamp": started.replace(tzinfo=None), "level": "WARNING", "logger": "", "message": "two"},
    ]
    listener = await _connect(database)
    try:
        await listener.execute(f"LISTEN {DONE_CHANNEL}")
        async with await _connect(database) as connection:
            assert await _job_count(connection, job_id) == 1
            params = finish_params(execution_id, outcome, logs, done_payload(execution_id, outcome), job_id)
            first = await (await connection.execute(FINISH, params)).fetchone()
            assert await _job_count(connection, job_id) == 0  # as procrastinate's finish with delete_jobs="successful"
            # Again (a late duplicate): the ended run is kept as it is, the NOTIFY says only its id.
            failed = {**outcome, "status": "Failed", "result": None}
            params = finish_params(execution_id, failed, [], done_payload(execution_id, failed), job_id)
            second = await (await connection.execute(FINISH, params)).fetchone()
        notices = []
        async with asyncio.timeout(5):
            async for notice in listener.notifies():
                notices.append(notice.payload)
                if len(notices) == 2:
                    break
    finally:
        await listener.close()

    assert first is not None and first[0] is True
    assert second is not None and second[0] is False
    assert parse_done(notices[0]) == (execution_id, outcome)
    assert notices[1] == execution_id
    stored = await _row(sessions, execution_id)
    assert (stored.status, stored.result, stored.duration_ms, stored.sdk_token_hash) == (
        "Completed",
        {"ok": True, "name": "Zoë"},
        3,
        None,
    )
    assert stored.started_at == started and stored.completed_at == started + timedelta(milliseconds=3)
    async with sessions() as session:
        from sqlalchemy import select

        lines = (await session.execute(select(ExecutionLog).order_by(ExecutionLog.seq))).scalars().all()  # type: ignore[arg-type]
    assert [(x.execution_id, x.seq, x.level, x.logger, x.message, x.timestamp) for x in lines] == [
        (execution_id, 0, "INFO", "wf", "héllo", started),
        (execution_id, 1, "WARNING", "", "two", started),
    ]


async def test_a_none_result_is_stored_as_sql_null_like_the_orm(database: str, sessions: Any) -> None:
    execution_id = await _add_run(sessions)
    await _take(database)
    outcome = {
        "status": "Failed",
        "result": None,
        "error_message": "boom",
        "error_type": "RuntimeError",
        "error_traceback": "Traceback...",
        "user_error": False,
        "started_at": None,  # never started: the recorded start is kept
        "completed_at": datetime.now(UTC),
        "duration_ms": None,
    }
    async with await _connect(database) as connection:
        await connection.execute(FINISH, finish_params(execution_id, outcome, [], execution_id))
        null = await (
            await connection.execute(
                "SELECT result IS NULL, started_at IS NOT NULL FROM execution WHERE id = %s", (execution_id,)
            )
        ).fetchone()
    assert null == (True, True)
    stored = await _row(sessions, execution_id)
    assert (stored.status, stored.error_message, stored.error_type) == ("Failed", "boom", "RuntimeError")


async def test_the_take_pool_commits_durably_and_the_job_pool_does_not(database: str, sessions: Any) -> None:
    """The Running mark must be on disk before a worker starts (a database crash must not rerun it)."""
    info = conninfo(database)
    async with await _connect(database) as admin:
        # Even where the database's default is off, TAKE's connection is durable.
        name = database.rsplit("/", 1)[1]
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    durable, relaxed = take_pool(info), job_pool(info, 2)
    await durable.open(wait=True)
    await relaxed.open(wait=True)
    try:
        async with durable.connection() as connection:
            assert (await (await connection.execute("SHOW synchronous_commit")).fetchone()) == ("on",)
            assert connection.autocommit
        async with relaxed.connection() as connection:
            assert (await (await connection.execute("SHOW synchronous_commit")).fetchone()) == ("off",)
            assert connection.autocommit
    finally:
        await durable.close()
        await relaxed.close()


class _CommitAfterFirstStatement:
    """A psycopg connection that lets another transaction commit right after its first statement.

    Reproduces the race TAKE_RUN is for: procrastinate's fetch function reads with a newer
    snapshot than TAKE's own, so TAKE can take a job whose run (committed in between) it cannot see.
    """

    def __init__(self, connection: Any, then: Any) -> None:
        self.connection, self.then, self.statements = connection, then, 0

    async def execute(self, query: str, params: dict[str, Any]) -> Any:
        cursor = await self.connection.execute(query, params)
        self.statements += 1
        if self.statements == 1:
            await self.then()
        return cursor


async def _job_and_uncommitted_run(database: str, sessions: Any, run_id: str) -> Any:
    """A committed todo job for ``run_id`` and its run INSERTed on a connection that has not committed (returned)."""
    async with sessions() as session:  # the run's job is visible to the fetch, the run is not yet committed
        await session.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args) "
                "VALUES (:q, 'bifrost.run_execution', :id, CAST(:a AS jsonb))"
            ),
            {"q": QUEUE, "id": run_id, "a": json.dumps({"execution_id": run_id})},
        )
        await session.commit()
    writer = await _connect(database)
    await writer.set_autocommit(False)
    await writer.execute(
        "INSERT INTO execution (id, workflow_id, workflow_name, kind, executed_by, executed_by_name, trigger, "
        "is_function_key, status, input_data, user_error, timeout_seconds, created_at) VALUES "
        "(%s, 'w', 'noop', 'workflow', 'u', 'U', 'api', false, 'Pending', '{}', false, 60, now())",
        (run_id,),
    )
    return writer


async def test_a_run_committed_after_takes_snapshot_is_still_marked_running(database: str, sessions: Any) -> None:
    from psycopg.rows import dict_row

    writer = await _job_and_uncommitted_run(database, sessions, "run-x")
    try:
        async with await _connect(database) as connection:
            connection.row_factory = dict_row
            racing = _CommitAfterFirstStatement(connection, writer.commit)
            row = await take(racing, _params())  # type: ignore[arg-type]
    finally:
        await writer.close()

    assert racing.statements == 2  # TAKE missed the run; TAKE_RUN marked it
    assert row is not None and row["run_id"] == "run-x" and row["status"] == "doing"
    assert context_of(row)["execution_id"] == "run-x"
    stored = await _row(sessions, "run-x")
    assert (stored.status, stored.node) == ("Running", "node-a")


async def test_take_without_the_fallback_would_lose_that_run(database: str, sessions: Any) -> None:
    """The state the fallback repairs: TAKE alone leaves the run Pending and its only job doing."""
    from psycopg.rows import dict_row

    writer = await _job_and_uncommitted_run(database, sessions, "run-y")
    try:
        async with await _connect(database) as connection:
            connection.row_factory = dict_row
            row = await (await connection.execute(TAKE, _params())).fetchone()
        await writer.commit()
    finally:
        await writer.close()
    assert row is not None and row["id"] is not None and row["run_id"] is None
    assert (await _row(sessions, "run-y")).status == "Pending"
