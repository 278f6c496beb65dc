"""The execute hot path after issue 23: cheaper, with every run still recorded and nothing cached too long.

Covers the changes that made it cheaper: concurrent submits share the dispatcher's group commit,
outcomes skip Postgres' WAL flush while new runs and ``Running`` marks do not, pooled Postgres
connections are pinged only after sitting idle, and an ended run's SDK token is never cached again.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import db
from app.db import create_engine, session_factory, transaction
from app.engine.group_commit import GroupCommitter
from app.services.actor import Actor
from app.services.identity import actor_cache
from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed


def test_concurrent_runs_share_commits_and_every_run_is_stored(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, database_url)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        writes = server.platform.dispatcher.writes
        before = writes.transactions, writes.statements

        def run(i: int) -> dict[str, Any]:
            with server.client(ids["alice_key"]) as alice:
                response = alice.post("/api/workflows/add/execute?wait=true", json={"params": {"a": i, "b": 1}})
                assert response.status_code == 200, response.text
                return response.json()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(12) as threads:
            runs = list(threads.map(run, range(24)))
        assert [r["result"] for r in runs] == [{"sum": i + 1} for i in range(24)]
        assert {r["status"] for r in runs} == {"Completed"}

        async def stored() -> tuple[dict[str, int], int]:
            async with transaction(server.platform.sessions) as session:
                rows = await session.execute(
                    text("SELECT status, COUNT(*) FROM execution WHERE workflow_name = 'add' GROUP BY status")
                )
                logs = await session.scalar(
                    text(
                        "SELECT COUNT(*) FROM execution_log l JOIN execution e ON e.id = l.execution_id "
                        "WHERE e.workflow_name = 'add'"
                    )
                )
                return {status: count for status, count in rows.all()}, int(logs or 0)

        statuses, logs = server.call(stored)
        assert statuses == {"Completed": 24}  # every run written, with its outcome
        assert logs == 24  # and its log line ("adding a and b")
        if database_url.startswith("postgresql"):
            # Outcomes (with their log lines) and Running marks: one driver statement per group.
            assert writes.statements > before[1] and writes.transactions == before[0]
        else:
            assert writes.transactions > before[0] and writes.statements == 0  # through the group committer
    finally:
        server.stop()


def test_submits_arriving_together_share_one_commit(tmp_path: Path) -> None:
    from app.services.executions.service import ExecutionService
    from app.services.identity.auth import AuthService

    server = LiveServer(make_settings(tmp_path)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        platform = server.platform

        async def submit_together() -> tuple[int, list[str]]:
            async with transaction(platform.sessions) as session:
                actor = await AuthService(session).actor_for_token(ids["alice_key"])

            async def one(i: int) -> str:
                async with platform.sessions() as session:
                    execution = await ExecutionService(session, platform.dispatcher).submit(
                        "add", {"a": i, "b": 1}, actor
                    )
                    return execution.id

            await platform.dispatcher.wait(await one(0))  # the workflow row is cached from now on
            before = platform.dispatcher.writes.transactions
            submitted = await asyncio.gather(*(one(i) for i in range(1, 9)))
            inserts = platform.dispatcher.writes.transactions - before
            for execution_id in submitted:
                await platform.dispatcher.wait(execution_id)
            return inserts, submitted

        inserts, submitted = server.call(submit_together)
        assert inserts == 1  # eight INSERTs, one commit
        with server.client(ids["alice_key"]) as alice:
            for execution_id in submitted:
                assert alice.get(f"/api/executions/{execution_id}").json()["status"] == "Completed"
    finally:
        server.stop()


async def test_only_outcomes_skip_the_wal_flush_on_postgres(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        writes = GroupCommitter(session_factory(engine))
        postgres = engine.dialect.name == "postgresql"

        async def setting(session: AsyncSession) -> str:
            if not postgres:
                return "n/a"
            return str(await session.scalar(text("SHOW synchronous_commit")))

        alone_relaxed = await writes.run(setting, durable=False)
        alone_durable = await writes.run(setting)
        mixed = await asyncio.gather(writes.run(setting, durable=False), writes.run(setting))
        if postgres:
            assert alone_relaxed == "off"
            assert alone_durable == "on"
            assert mixed == ["on", "on"]  # a group with one durable write waits for the flush
        else:
            assert {alone_relaxed, alone_durable, *mixed} == {"n/a"}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # the idle ping is for Postgres
async def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            victim = await connection.scalar(text("SELECT pg_backend_pid()"))
        # The database restarts under the pool (here: an admin ends the pooled connection's backend).
        admin = create_engine(database_url)
        async with admin.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        await admin.dispose()
        await asyncio.sleep(0.2)
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != victim
    finally:
        await engine.dispose()


def test_an_ended_runs_token_is_not_cached_again() -> None:
    fields: dict[str, Any] = {"user_id": "u1", "email": "u@x.io", "name": "U", "organization_id": "o1"}
    actor = Actor(**fields, is_superuser=False, acting_org_id="o1", execution_id="e1")
    other = Actor(**fields, is_superuser=False, acting_org_id="o1", execution_id="e2")
    actor_cache.clear()
    actor_cache.put("hash-1", None, actor)
    assert actor_cache.get("hash-1", None) is actor

    # The run's end is being written: the entry goes, and a resolution racing the commit (the row
    # still reads Running) is not cached for the next five seconds.
    actor_cache.forget_execution_now_and_after_commit(None, "e1")  # type: ignore[arg-type]
    assert actor_cache.get("hash-1", None) is None
    actor_cache.put("hash-1", None, actor)
    assert actor_cache.get("hash-1", None) is None

    actor_cache.put("hash-2", None, other)  # other runs are cached as before
    assert actor_cache.get("hash-2", None) is other
    actor_cache.clear()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the guards do not depend on the database
def test_the_execute_route_keeps_its_guards_and_headers(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, database_url)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        with server.client(ids["alice_key"]) as alice:
            done = alice.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1, "b": 2}})
            assert done.status_code == 200
            for header in ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"):
                assert header in done.headers
            too_big = alice.post(
                "/api/workflows/add/execute?wait=true",
                content=b'{"params": {"a": "' + b"x" * (11 * 1024**2) + b'"}}',
                headers={"content-type": "application/json"},
            )
            assert too_big.status_code == 413
            not_json = alice.post("/api/workflows/add/execute", content=b"a=1", headers={"content-type": "text/plain"})
            assert not_json.status_code == 415
        with httpx.Client(base_url=server.url) as anonymous:
            assert anonymous.post("/api/workflows/add/execute", json={"params": {}}).status_code == 401
            wrong = anonymous.post(
                "/api/workflows/add/execute", json={"params": {}}, headers={"Authorization": "Bearer bfk_wrong"}
            )
            assert wrong.status_code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # the one-statement outcome is Postgres'
def test_an_outcome_whose_statement_fails_is_stored_the_session_way(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, database_url)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        writes = server.platform.dispatcher.writes
        tried: list[str] = []

        async def broken(outcome: Any) -> bool:
            tried.append(outcome.execution_id)
            raise RuntimeError("the statement failed")

        writes.finish = broken
        with server.client(ids["alice_key"]) as alice:
            response = alice.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 2, "b": 3}})
            assert response.status_code == 200, response.text
            run = response.json()
            assert run["status"] == "Completed" and run["result"] == {"sum": 5}
            assert tried == [run["execution_id"]]
            stored = alice.get(f"/api/executions/{run['execution_id']}").json()
            assert stored["status"] == "Completed" and stored["result"] == {"sum": 5}
            logs = alice.get(f"/api/executions/{run['execution_id']}/logs").json()
            assert [line["message"] for line in logs] == ["adding 2 and 3"], logs
    finally:
        server.stop()
