"""Group commit: writes waiting together share one transaction; a failing one fails alone."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import db
from app.db import create_engine, session_factory
from app.engine.group_commit import GroupCommitter, Outcome, group_statement


@pytest.fixture
async def committer(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)"))
    yield GroupCommitter(session_factory(engine)), engine
    await engine.dispose()


def _insert(value: int):  # type: ignore[no-untyped-def]
    async def write(session: AsyncSession) -> int:
        await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return write


async def _values(engine) -> list[int]:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        return [row[0] for row in await connection.execute(text("SELECT v FROM t ORDER BY v"))]


async def test_writes_waiting_together_share_one_commit(committer) -> None:  # type: ignore[no-untyped-def]
    writes, engine = committer
    results = await asyncio.gather(*(writes.run(_insert(v)) for v in range(10)))
    assert results == list(range(10))
    assert await _values(engine) == list(range(10))
    assert writes.transactions == 1  # all ten were queued before the writer ran


async def test_one_at_a_time_is_one_transaction_each(committer) -> None:  # type: ignore[no-untyped-def]
    writes, _engine = committer
    for v in range(3):
        assert await writes.run(_insert(v)) == v
    assert writes.transactions == 3


async def test_a_failing_write_fails_alone_and_the_others_land(committer) -> None:  # type: ignore[no-untyped-def]
    writes, engine = committer
    outcomes = await asyncio.gather(
        writes.run(_insert(1)), writes.run(_insert(1)), writes.run(_insert(2)), return_exceptions=True
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], Exception) and "UNIQUE" in str(outcomes[1])
    assert await _values(engine) == [1, 2]


# ----- Postgres: outcomes and Running marks as one statement per group ------------------------------------
@pytest.fixture
async def postgres_writes(database_url: str):  # type: ignore[no-untyped-def]
    from app.db import upgrade_database_async

    await upgrade_database_async(database_url)
    engine = create_engine(database_url)
    writes = GroupCommitter(session_factory(engine))
    yield writes, engine
    await writes.close()
    await engine.dispose()


async def _new_run(engine, status: str, **values: Any) -> str:  # type: ignore[no-untyped-def]
    from app.services.executions.service import _COLUMN_NAMES, _insert_execution, _new_execution

    execution = _new_execution(
        {"workflow_id": "wf", "workflow_name": "wf", "executed_by": "u", "status": status, **values}
    )
    async with session_factory(engine)() as session:
        await _insert_execution(session, {name: execution.__dict__[name] for name in _COLUMN_NAMES})
        await session.commit()
    return str(execution.__dict__["id"])


async def _row(engine, execution_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT status, result::text AS result, result IS NULL AS result_is_null, error_message, error_type, "
                "error_traceback, user_error, started_at, completed_at, duration_ms, sdk_token_hash "
                "FROM execution WHERE id = :id"
            ),
            {"id": execution_id},
        )
        return dict(found.mappings().one())


def _outcome(execution_id: str, **values: Any) -> Outcome:
    fields: dict[str, Any] = {
        "status": "Completed",
        "result": {"ok": True, "n": 1},
        "error_message": None,
        "error_type": None,
        "error_traceback": None,
        "user_error": False,
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "completed_at": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        "duration_ms": 1000,
    }
    return Outcome(execution_id=execution_id, **{**fields, **values})


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_outcomes_waiting_together_are_one_statement_with_their_logs(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    assert writes.one_statement and not writes.takes_inserts
    started = datetime(2026, 1, 1, tzinfo=UTC)
    logged = await _new_run(engine, "Running", started_at=started, sdk_token_hash="h1")
    failed = await _new_run(engine, "Running", started_at=started, sdk_token_hash="h2")
    ended = await _new_run(engine, "Cancelled", error_message="Cancelled by user")
    lines = [
        {"execution_id": logged, "seq": i, "timestamp": datetime(2026, 1, 2, tzinfo=UTC), "level": "INFO",
         "logger": "stdout", "message": f"line {i} ✓"}
        for i in range(2)
    ]  # fmt: skip

    stored = await asyncio.gather(
        writes.finish(_outcome(logged, logs=lines)),
        writes.finish(
            _outcome(
                failed, status="Failed", result=None, error_message="boom", error_type="ValueError",
                error_traceback="Traceback ...", user_error=True, started_at=None,
            )
        ),
        writes.finish(_outcome(ended)),
    )  # fmt: skip

    assert stored == [True, True, False]  # the run that had ended already is not written over
    assert writes.statements == 1 and writes.transactions == 0  # one statement, no session transaction
    first = await _row(engine, logged)
    assert first["status"] == "Completed" and json.loads(first["result"]) == {"ok": True, "n": 1}
    assert first["sdk_token_hash"] is None  # the run's SDK token ends with it
    assert first["started_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and first["duration_ms"] == 1000
    second = await _row(engine, failed)
    assert second["result_is_null"]  # None is SQL NULL, as the ORM stores it
    assert (second["status"], second["error_message"], second["error_type"], second["user_error"]) == (
        "Failed", "boom", "ValueError", True,
    )  # fmt: skip
    assert second["error_traceback"] == "Traceback ..."
    assert second["started_at"] == started  # no start reported: the recorded one stays
    third = await _row(engine, ended)
    assert third["status"] == "Cancelled" and third["error_message"] == "Cancelled by user" and third["result_is_null"]
    async with engine.connect() as connection:
        logs = await connection.execute(
            text("SELECT execution_id, seq, message FROM execution_log ORDER BY execution_id, seq")
        )
        assert [tuple(row) for row in logs] == [(logged, 0, "line 0 ✓"), (logged, 1, "line 1 ✓")]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_failed_outcome_statement_fails_its_callers_and_stores_nothing(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    run = await _new_run(engine, "Running")
    orphan_line = {"execution_id": "no-such-run", "seq": 0, "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
                   "level": "INFO", "logger": "stdout", "message": "x"}  # fmt: skip
    outcomes = await asyncio.gather(
        writes.finish(_outcome(run)), writes.finish(_outcome(run, logs=[orphan_line])), return_exceptions=True
    )
    assert all(isinstance(o, Exception) and "foreign key" in str(o) for o in outcomes), outcomes
    assert (await _row(engine, run))["status"] == "Running"  # one statement: all of it or nothing
    # The failed statement's connection was dropped, not pooled again; the next group works.
    assert await writes.finish(_outcome(run)) is True
    assert (await _row(engine, run))["status"] == "Completed"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_marks_are_one_statement_and_skip_runs_no_longer_pending(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    first, cancelled, second = (
        await _new_run(engine, "Pending"),
        await _new_run(engine, "Cancelled"),
        await _new_run(engine, "Pending"),
    )
    marked = await writes.mark_running([(first, "hash-1"), (cancelled, "hash-2"), (second, "hash-3")])
    assert marked == [True, False, True]
    assert writes.statements == 1
    rows = [await _row(engine, run) for run in (first, cancelled, second)]
    assert [(r["status"], r["sdk_token_hash"]) for r in rows] == [
        ("Running", "hash-1"), ("Cancelled", None), ("Running", "hash-3"),
    ]  # fmt: skip
    assert rows[0]["started_at"] is not None and rows[1]["started_at"] is None
    assert await writes.mark_running([(first, "again")]) == [False]  # Running already: not marked twice


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_outcomes_and_marks_waiting_together_are_one_statement(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    finished, logged = await _new_run(engine, "Running"), await _new_run(engine, "Running")
    queued, cancelled = await _new_run(engine, "Pending"), await _new_run(engine, "Cancelled")
    line = {"execution_id": logged, "seq": 0, "timestamp": datetime(2026, 1, 2, tzinfo=UTC), "level": "INFO",
            "logger": "stdout", "message": "done"}  # fmt: skip

    stored_a, stored_b, marked = await asyncio.gather(
        writes.finish(_outcome(finished)),
        writes.finish(_outcome(logged, logs=[line])),
        writes.mark_running([(queued, "hash-q"), (cancelled, "hash-c")]),
    )

    assert (stored_a, stored_b, marked) == (True, True, [True, False])
    assert writes.statements == 1 and writes.combined == 1  # one round trip, one commit for all four runs
    assert [(await _row(engine, run))["status"] for run in (finished, logged, queued, cancelled)] == [
        "Completed", "Completed", "Running", "Cancelled",
    ]  # fmt: skip
    assert (await _row(engine, queued))["sdk_token_hash"] == "hash-q"
    async with engine.connect() as connection:
        logs = await connection.execute(text("SELECT execution_id, message FROM execution_log"))
        assert [tuple(row) for row in logs] == [(logged, "done")]


def test_a_statement_with_marks_commits_durably_and_one_of_outcomes_only_does_not() -> None:
    relaxed = "set_config('synchronous_commit', 'off', true)"
    assert relaxed in group_statement(outcomes=1, logs=False, marks=0)
    assert relaxed in group_statement(outcomes=2, logs=True, marks=0)
    # A run marked Running must never run again after a crash, an accepted one must survive it: both wait
    # for the WAL flush, and so does everything in their statement.
    assert relaxed not in group_statement(outcomes=1, logs=True, marks=1)
    assert relaxed not in group_statement(outcomes=0, logs=False, marks=2)
    assert relaxed not in group_statement(outcomes=1, logs=False, marks=0, insert_columns=("id", "status"))
    with pytest.raises(ValueError, match="new runs, outcomes or marks"):
        group_statement(outcomes=0, logs=False, marks=0)
    with pytest.raises(ValueError, match="not a column name"):  # names are written into the SQL text
        group_statement(outcomes=0, logs=False, marks=0, insert_columns=("id", "status) SELECT 1; --"))


_LITERALS = {"text": "'x'", "bool": "false", "timestamptz": "now()", "int": "1", "json": "'[]'"}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_every_group_statement_finds_its_rows_by_primary_key_even_with_generic_plans(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    """On a history never analysed (no autovacuum), a cached generic plan must still not scan the table.

    The driver prepares each statement; after five runs Postgres may keep a generic plan, made without the
    parameters' values. An ``id = ANY($1)`` or a join with ``unnest``/``VALUES`` was then planned as a scan
    of the whole table (or of the status index's every Pending version), whose cost grew with the history.
    """
    import re

    from app.services.executions.service import _COLUMN_NAMES

    _writes, engine = postgres_writes
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        await driver.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for number, (outcomes, logs, marks, columns) in enumerate(
                [(1, False, 0, ()), (4, True, 0, ()), (0, False, 4, ()), (2, False, 2, _COLUMN_NAMES)]
            ):
                sql = group_statement(outcomes=outcomes, logs=logs, marks=marks, insert_columns=columns)
                kinds = [
                    kind for _, kind in sorted({(int(n), k) for n, k in re.findall(r"\$(\d+)::(\w+(?:\[\])?)", sql)})
                ]
                values = ", ".join("'{}'" if kind.endswith("[]") else _LITERALS[kind] for kind in kinds)
                await driver.execute(f"PREPARE probe{number} AS {sql}")
                plan = "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE probe{number}({values})"))
                assert "Seq Scan on execution " not in plan and "Bitmap" not in plan, plan
                assert plan.count("Index Scan using execution_pkey on execution") == outcomes + marks, plan
        finally:
            await driver.execute("DEALLOCATE ALL")
            await driver.execute("RESET plan_cache_mode")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_failing_outcome_does_not_fail_the_marks_grouped_with_it(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    run, queued = await _new_run(engine, "Running"), await _new_run(engine, "Pending")
    orphan_line = {"execution_id": "no-such-run", "seq": 0, "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
                   "level": "INFO", "logger": "stdout", "message": "x"}  # fmt: skip

    outcome, marked = await asyncio.gather(
        writes.finish(_outcome(run, logs=[orphan_line])),
        writes.mark_running([(queued, "hash-q")]),
        return_exceptions=True,
    )

    assert isinstance(outcome, Exception) and "foreign key" in str(outcome)
    assert marked == [True]  # tried again alone after the shared statement failed
    assert writes.combined == 0
    assert (await _row(engine, run))["status"] == "Running" and (await _row(engine, queued))["status"] == "Running"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_kept_connections_are_pinged_after_idling_and_a_dead_one_is_replaced(
    postgres_writes, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    first = await _new_run(engine, "Running")
    assert await writes.finish(_outcome(first)) is True
    (kept,) = writes._held  # kept checked out for the next statement
    victim = kept.driver.get_server_pid()
    # The database restarts under it (here: an admin ends its backend) while it waits.
    admin = create_engine(engine.url)
    async with admin.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
    await admin.dispose()
    await asyncio.sleep(0.2)

    second = await _new_run(engine, "Running")
    assert await writes.finish(_outcome(second)) is True  # pinged, found dead, replaced: no statement lost
    assert (await _row(engine, second))["status"] == "Completed"
    assert [held.driver.get_server_pid() for held in writes._held] != [victim]

    await writes.close()
    assert writes._held == [] and engine.pool.checkedout() == 0  # all back in the pool
    # A statement that ends after close (shutting down) gives its connection back instead of keeping it.
    third = await _new_run(engine, "Running")
    assert await writes.finish(_outcome(third)) is True
    assert writes._held == [] and engine.pool.checkedout() == 0


async def test_sqlite_takes_inserts_and_no_one_statement_path(committer) -> None:  # type: ignore[no-untyped-def]
    writes, _engine = committer
    assert not writes.one_statement and writes.takes_inserts


def _record(**values: Any) -> dict[str, Any]:
    from app.services.executions.service import _COLUMN_NAMES, _new_execution

    execution = _new_execution({"workflow_id": "wf", "workflow_name": "wf", "executed_by": "u", **values})
    return {name: execution.__dict__[name] for name in _COLUMN_NAMES}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_new_run_is_inserted_in_one_statement_with_its_values(postgres_writes) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    record = _record(
        status="Running", input_data={"name": "ünïcode \"q\"", "n": [1, 2], "none": None},
        started_at=datetime(2026, 1, 2, tzinfo=UTC), sdk_token_hash="h", executed_by_name="Zoë O'Brien",
    )  # fmt: skip
    await writes.insert(record)
    assert writes.statements == 1
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT status, input_data::text, started_at, created_at, sdk_token_hash, result IS NULL, "
                     "executed_by_name, user_error, timeout_seconds, completed_at FROM execution WHERE id = :id"),
                {"id": record["id"]},
            )
        ).one()  # fmt: skip
    assert row[0] == "Running" and json.loads(row[1]) == {"name": 'ünïcode "q"', "n": [1, 2], "none": None}
    assert row[2] == datetime(2026, 1, 2, tzinfo=UTC) and row[3] == record["created_at"]
    assert row[4] == "h" and row[5] is True  # no result: SQL NULL, as the ORM stores it
    assert row[6] == "Zoë O'Brien" and row[7] is False and row[8] == record["timeout_seconds"]
    assert row[9] is None
    with pytest.raises(Exception, match="duplicate key"):  # a durable INSERT: the row is there, once
        await writes.insert(record)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_new_runs_outcomes_and_marks_together_are_one_statement_and_a_bad_row_fails_alone(
    postgres_writes,
) -> None:  # type: ignore[no-untyped-def]
    writes, engine = postgres_writes
    running, queued = await _new_run(engine, "Running"), await _new_run(engine, "Pending")
    good = [_record(input_data={"i": i}) for i in range(3)]
    results = await asyncio.gather(
        *(writes.insert(record) for record in good),
        writes.finish(_outcome(running)),
        writes.mark_running([(queued, "hash-q")]),
    )
    assert results == [None, None, None, True, [True]]
    assert writes.statements == 1 and writes.combined == 1  # three new runs, an outcome and a mark: one commit
    assert [(await _row(engine, r["id"]))["status"] for r in good] == ["Pending"] * 3

    duplicate, fresh = good[0], _record(input_data={"i": 9})
    before = writes.statements
    results = await asyncio.gather(writes.insert(duplicate), writes.insert(fresh), return_exceptions=True)
    assert isinstance(results[0], Exception) and "duplicate key" in str(results[0])
    assert results[1] is None and (await _row(engine, fresh["id"]))["status"] == "Pending"  # the good one landed
    assert writes.statements == before + 1  # the shared statement failed; each alone: only the good one ran

    with pytest.raises(TypeError, match="JSON serializable"):  # refused before anything is queued
        await writes.insert(_record(input_data={"when": datetime(2026, 1, 1)}))


# ----- SQLite: a group of prepared writes straight on sqlite3 ---------------------------------------------
@pytest.fixture
async def sqlite_runs(tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.db import upgrade_database_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
    await upgrade_database_async(url)
    engine = create_engine(url)
    yield GroupCommitter(session_factory(engine)), engine, tmp_path / "runs.db"
    await engine.dispose()


def _insert_write(**values: Any):  # type: ignore[no-untyped-def]
    from app.services.executions.prepared import PreparedWrite
    from app.services.executions.service import _COLUMN_NAMES, _PREPARED_INSERT, _new_execution

    execution = _new_execution({"workflow_id": "wf", "workflow_name": "wf", "executed_by": "u", **values})
    return PreparedWrite(_PREPARED_INSERT, [{name: execution.__dict__[name] for name in _COLUMN_NAMES}])


async def _statuses(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as connection:
        return {row[0]: row[1] for row in await connection.execute(text("SELECT id, status FROM execution"))}


async def test_sqlite_prepared_writes_share_one_raw_transaction(sqlite_runs) -> None:  # type: ignore[no-untyped-def]
    from app.services.executions.service import finish_write, mark_running_write

    writes, engine, _path = sqlite_runs
    inserts = [_insert_write(id=f"run-{i}", status="Pending") for i in range(3)]
    assert await asyncio.gather(*(writes.run(w) for w in inserts)) == [[1], [1], [1]]
    assert writes.transactions == 1
    marked, finished = await asyncio.gather(
        writes.run(mark_running_write([("run-0", "h0"), ("run-1", "h1"), ("no-such-run", "h")])),
        writes.run(finish_write("run-2", status="Completed", result={"ok": True}), durable=False),
    )
    assert marked == [1, 1, 0] and finished == [1]
    assert writes.transactions == 2 and writes.raw_transactions == 2  # no session
    assert await _statuses(engine) == {"run-0": "Running", "run-1": "Running", "run-2": "Completed"}
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT result, sdk_token_hash FROM execution WHERE id = 'run-2'"))).one()
        assert json.loads(row[0]) == {"ok": True} and row[1] is None
        hashes = await connection.execute(text("SELECT sdk_token_hash FROM execution WHERE id IN ('run-0', 'run-1')"))
        assert sorted(h for (h,) in hashes) == ["h0", "h1"]
    # Ended already: not written over.
    assert await writes.run(finish_write("run-2", status="Failed")) == [0]


async def test_sqlite_groups_use_the_idle_pooled_connection_without_a_checkout(sqlite_runs) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    writes, engine, _path = sqlite_runs
    checkouts = []
    event.listen(engine.sync_engine, "checkout", lambda *_: checkouts.append(1))
    assert await writes.run(_insert_write(id="first", status="Pending")) == [1]
    assert len(checkouts) == 1  # the first group checks the connection out and remembers it
    for i in range(5):
        assert await writes.run(_insert_write(id=f"run-{i}", status="Pending")) == [1]
    assert len(checkouts) == 1 and writes.raw_transactions == 6  # idle in the pool: used in place

    # While a session holds it, a group waits for the pool like anyone (never runs beside the session).
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        waiting = asyncio.ensure_future(writes.run(_insert_write(id="after-session", status="Pending")))
        await asyncio.sleep(0.05)
        assert not waiting.done()
    assert await waiting == [1] and len(checkouts) == 3

    # The pool replaced the connection (closed after an error, say): the group takes the new one.
    await engine.dispose()
    assert await writes.run(_insert_write(id="after-dispose", status="Pending")) == [1]
    assert set(await _statuses(engine)) == {"first", "after-session", "after-dispose", *(f"run-{i}" for i in range(5))}


async def test_sqlite_a_failing_prepared_write_fails_alone(sqlite_runs) -> None:  # type: ignore[no-untyped-def]
    writes, engine, _path = sqlite_runs
    await writes.run(_insert_write(id="taken", status="Pending"))
    outcomes = await asyncio.gather(
        writes.run(_insert_write(id="a", status="Pending")),
        writes.run(_insert_write(id="taken", status="Pending")),
        writes.run(_insert_write(id="b", status="Pending")),
        return_exceptions=True,
    )
    assert outcomes[0] == [1] and outcomes[2] == [1]
    assert isinstance(outcomes[1], Exception) and "UNIQUE" in str(outcomes[1])
    assert set(await _statuses(engine)) == {"taken", "a", "b"}  # the group was rolled back, then tried write by write
    assert writes.raw_transactions == 1  # only the first insert; the failed group took the session path


async def test_sqlite_prepared_writes_wait_for_another_process_holding_the_lock(sqlite_runs) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    writes, engine, path = sqlite_runs
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # as `bifrost run` beside the server would
    try:
        pending = asyncio.ensure_future(writes.run(_insert_write(id="late", status="Pending")))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waits (the session path's asynchronous retry), neither fails nor writes
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(pending, 30) == [1]
    assert await _statuses(engine) == {"late": "Pending"}
    assert writes.raw_transactions == 0  # busy: the session path took it
