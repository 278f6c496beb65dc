"""Running jobs through the warm worker pool: params, results, errors, logs, context."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC
from pathlib import Path

import pytest

from app.engine.pool import WorkerPool
from app.engine.protocol import JobResult

from .conftest import PoolFactory, logs, make_job

pytestmark = pytest.mark.timeout(60)


async def test_params_are_coerced_to_the_annotated_types(pool: WorkerPool) -> None:
    params = {"count": "5", "when": "2024-03-01", "color": "red", "address": {"street": "Main St", "zip": "12345"}}

    result = await pool.run(make_job("coerce", params))

    assert result.status == "Completed", result.error_message
    assert result.result == {
        "count": 5,
        "count_type": "int",
        "when_type": "date",
        "when": "2024-03-01",
        "color_is_enum": True,
        "color": "RED",
        "address_type": "Address",
        "zip": 12345,
        "ratio": 0.5,
    }


async def test_invalid_params_fail_with_a_message_per_field(pool: WorkerPool) -> None:
    params = {"count": "many", "when": "someday", "color": "green", "surprise": 1}

    result = await pool.run(make_job("coerce", params))

    assert result.status == "Failed"
    assert result.error_type == "ValidationError"
    assert result.user_error is True
    message = result.error_message or ""
    for field in ("count:", "when:", "color:", "address: this parameter is required", "surprise: unknown parameter"):
        assert field in message, message


async def test_pydantic_model_result_is_dumped_as_json(pool: WorkerPool) -> None:
    result = await pool.run(make_job("pydantic_result"))

    assert result.status == "Completed", result.error_message
    assert result.result == {"title": "weekly", "created": "2024-05-06T07:08:09Z", "tags": ["a"]}


async def test_dataclasses_dates_sets_tuples_enums_and_nan_are_serialised(pool: WorkerPool) -> None:
    result = await pool.run(make_job("mixed_result"))

    assert result.status == "Completed", result.error_message
    assert result.result == {
        "point": {"x": 1, "y": 2},
        "day": "2024-01-02",
        "ids": [3],
        "pair": [1, "a"],
        "color": "blue",
        "nan": None,
    }


async def test_unserialisable_result_fails_naming_the_type(pool: WorkerPool) -> None:
    result = await pool.run(make_job("unserialisable"))

    assert result.status == "Failed"
    assert result.error_type == "SerializationError"
    assert "Opaque" in (result.error_message or "")
    assert "serialis" in (result.error_message or "")
    assert result.result is None


async def test_user_error_keeps_its_message_and_is_marked_for_the_user(pool: WorkerPool) -> None:
    result = await pool.run(make_job("user_error"))

    assert result.status == "Failed"
    assert result.user_error is True
    assert result.error_type == "UserError"
    assert result.error_message == "Mailbox alice@example.com does not exist"


async def test_other_exceptions_record_type_message_and_traceback(pool: WorkerPool) -> None:
    result = await pool.run(make_job("crash"))

    assert result.status == "Failed"
    assert result.user_error is False
    assert result.error_type == "ValueError"
    assert result.error_message == "ValueError: bad value 42"
    traceback = result.traceback or ""
    assert "flows.py" in traceback and "_parse" in traceback and "in crash" in traceback
    # The worker's own frames are noise for authors.
    assert "engine/worker.py" not in traceback


async def test_unknown_workflow_fails_without_raising(pool: WorkerPool) -> None:
    result = await pool.run(make_job("does_not_exist"))

    assert result.status == "Failed"
    assert result.error_type == "NotFound"
    assert "does_not_exist" in (result.error_message or "")


async def test_data_provider_runs_with_its_params(pool: WorkerPool) -> None:
    result = await pool.run(make_job("colors", {"prefix": "b"}, kind="data_provider"))

    assert result.status == "Completed", result.error_message
    assert result.result == [{"label": "BLUE", "value": "blue"}]


async def test_context_is_bound_to_the_execution(pool: WorkerPool) -> None:
    job = make_job("whoami", org_id="org-7")

    result = await pool.run(job)

    assert result.status == "Completed", result.error_message
    assert result.result["org_id"] == "org-7"
    assert result.result["execution_id"] == job.execution_id
    assert result.result["user_id"] == "user-1"
    assert result.result["email"] == "ops@example.com"


async def test_jobs_reuse_the_warm_process_and_its_event_loop(pool: WorkerPool) -> None:
    first = await pool.run(make_job("whoami"))
    second = await pool.run(make_job("whoami"))

    assert first.result["pid"] == second.result["pid"] == pool.pids()[0]
    assert first.result["loop"] == second.result["loop"]


async def test_logs_of_every_level_and_printed_output_are_captured_in_order(pool: WorkerPool) -> None:
    job = make_job("chatty")

    result = await pool.run(job)

    assert result.status == "Completed", result.error_message
    records = logs(pool).of(job.execution_id)
    lines = [(r.level, r.logger, r.message.splitlines()[0]) for r in records]
    assert lines == [
        ("DEBUG", "workspace.flows", "debug line"),
        ("INFO", "workspace.flows", "info line"),
        ("WARNING", "workspace.flows", "warning line"),
        ("ERROR", "workspace.flows", "error line"),
        ("CRITICAL", "workspace.flows", "critical line"),
        ("INFO", "stdout", "printed line"),
        ("ERROR", "stderr", "to stderr"),
        ("ERROR", "workspace.flows", "with traceback"),
        ("WARNING", "httpx", "library warning"),
        ("INFO", "stdout", "from a child process"),
    ]
    assert "ZeroDivisionError" in records[7].message
    stamps = [r.timestamp for r in records]
    assert all(t.tzinfo is not None and t.utcoffset() == UTC.utcoffset(None) for t in stamps)
    assert stamps == sorted(stamps)
    assert result.started_at <= stamps[0] and stamps[-1] <= result.completed_at


async def test_a_job_replacing_log_handlers_or_stdout_does_not_blind_the_next_one(pool: WorkerPool) -> None:
    assert (await pool.run(make_job("hijack_output"))).status == "Completed"
    job = make_job("chatty")

    await pool.run(job)

    messages = [r.message for r in logs(pool).of(job.execution_id)]
    assert "info line" in messages and "printed line" in messages and "to stderr" in messages


async def test_output_outside_an_execution_goes_to_the_pool_logger_not_on_log(
    make_pool: PoolFactory, main_workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.engine.pool")
    pool = await make_pool(main_workspace)  # flows.py prints while it is imported

    await pool.run(make_job("chatty"))

    assert any("importing flows" in r.getMessage() for r in caplog.records)
    assert logs(pool).records
    assert all(r.execution_id is not None for r in logs(pool).records)
    assert not any("importing flows" in r.message for r in logs(pool).records)


async def test_logs_stream_live_before_the_job_ends(pool: WorkerPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    job = make_job("wait_for_file", {"path": str(release)})

    task = asyncio.create_task(pool.run(job))
    line = await logs(pool).wait_for(job.execution_id, "waiting")

    assert not task.done()
    assert line.level == "INFO" and line.logger == "workspace.flows"
    release.touch()
    result = await task
    assert result.status == "Completed" and result.result == "released"
    assert [r.message for r in logs(pool).of(job.execution_id)] == ["waiting", "released"]


async def test_worker_imports_no_database_or_web_packages(pool: WorkerPool) -> None:
    result = await pool.run(make_job("loaded_modules"))

    assert result.status == "Completed", result.error_message
    modules: list[str] = result.result
    forbidden = {"sqlalchemy", "sqlmodel", "litestar", "aiosqlite", "asyncpg", "alembic", "jinja2", "uvicorn"}
    assert not [m for m in modules if m.split(".")[0] in forbidden]
    platform = {m for m in modules if m == "app" or m.startswith("app.")}
    allowed = {"app", "app.engine", "app.engine.worker", "app.engine.protocol", "app.engine.workspace_loader"}
    assert platform <= allowed | {"app.engine.procs"}  # procs: stdlib-only process-tree helpers
    assert "workspace.flows" in modules and "bifrost" in modules


async def test_many_concurrent_jobs_all_complete(make_pool: PoolFactory, main_workspace: Path) -> None:
    pool = await make_pool(main_workspace, size=2)
    jobs = [make_job("whoami") for _ in range(40)]

    results: list[JobResult] = await asyncio.gather(*(pool.run(job) for job in jobs))

    assert [r.status for r in results] == ["Completed"] * 40
    assert [r.result["execution_id"] for r in results] == [j.execution_id for j in jobs]
    assert {r.result["pid"] for r in results} == set(pool.pids())
    assert pool.stats() | {"generation": 0} == {
        "size": 2, "workers": 2, "busy": 0, "idle": 2, "starting": 0, "queued": 0, "generation": 0,
    }  # fmt: skip


async def test_duplicate_execution_id_is_refused(pool: WorkerPool, tmp_path: Path) -> None:
    job = make_job("wait_for_file", {"path": str(tmp_path / "never")})
    task = asyncio.create_task(pool.run(job))
    await logs(pool).wait_for(job.execution_id, "waiting")

    with pytest.raises(ValueError, match="already queued or running"):
        await pool.run(job)
    assert await pool.cancel(job.execution_id)
    assert (await task).status == "Cancelled"
