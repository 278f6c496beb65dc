"""Killing, replacing and reloading workers: timeouts, cancel, crashes, stop, reload."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from app.engine.pool import WorkerPool, WorkerStartError

from .conftest import PoolFactory, logs, make_job, write_workspace

pytestmark = pytest.mark.timeout(60)


async def _assert_serves(pool: WorkerPool) -> None:
    result = await pool.run(make_job("whoami"))
    assert result.status == "Completed", result.error_message


async def test_timeout_kills_cpu_bound_and_blocking_code(make_pool: PoolFactory, main_workspace: Path) -> None:
    pool = await make_pool(main_workspace, size=2)
    spin, block = make_job("spin", timeout=1), make_job("block", timeout=1)
    pids_before = set(pool.pids())

    results = await asyncio.gather(pool.run(spin), pool.run(block))

    for result in results:
        assert result.status == "Failed"
        assert result.error_type == "TimeoutError"
        assert result.error_message == "Timed out after 1 second"
        assert 900 <= result.duration_ms
    # Output up to the kill was still delivered.
    assert [r.message for r in logs(pool).of(spin.execution_id)] == ["spinning"]
    assert [r.message for r in logs(pool).of(block.execution_id)] == ["blocking"]
    await _assert_serves(pool)
    assert not pids_before & set(pool.pids()), "timed-out workers must be replaced"
    for pid in pids_before:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_cancel_a_running_job_kills_its_worker(pool: WorkerPool, tmp_path: Path) -> None:
    job = make_job("wait_for_file", {"path": str(tmp_path / "never")})
    task = asyncio.create_task(pool.run(job))
    await logs(pool).wait_for(job.execution_id, "waiting")
    pid = pool.pid_of(job.execution_id)

    assert await pool.cancel(job.execution_id) is True

    result = await task
    assert result.status == "Cancelled"
    assert result.error_type == "Cancelled"
    assert await pool.cancel(job.execution_id) is False
    assert pid not in pool.pids()
    await _assert_serves(pool)


async def test_cancel_a_queued_job_leaves_the_running_one_alone(pool: WorkerPool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    running = make_job("wait_for_file", {"path": str(release)})
    queued = make_job("whoami")
    running_task = asyncio.create_task(pool.run(running))
    await logs(pool).wait_for(running.execution_id, "waiting")
    queued_task = asyncio.create_task(pool.run(queued))
    await asyncio.sleep(0)
    assert pool.stats()["queued"] == 1

    assert await pool.cancel(queued.execution_id) is True

    assert (await queued_task).status == "Cancelled"
    assert pool.stats()["queued"] == 0
    assert not running_task.done()
    release.touch()
    assert (await running_task).status == "Completed"


async def test_cancelling_the_caller_cancels_the_job(pool: WorkerPool, tmp_path: Path) -> None:
    job = make_job("wait_for_file", {"path": str(tmp_path / "never")})
    task = asyncio.create_task(pool.run(job))
    await logs(pool).wait_for(job.execution_id, "waiting")
    pid = pool.pid_of(job.execution_id)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await _assert_serves(pool)
    assert pid not in pool.pids()


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [("exit_hard", "exited with code 3"), ("segfault", "signal SIGSEGV")],
)
async def test_a_worker_dying_mid_run_fails_the_job_as_worker_lost(
    pool: WorkerPool, workflow: str, expected: str
) -> None:
    result = await pool.run(make_job(workflow))

    assert result.status == "Failed"
    assert result.error_type == "WorkerLost"
    assert expected in (result.error_message or "")
    if workflow == "segfault":
        # The worker's fatal-error dump is kept for admins.
        assert "Segmentation fault" in (result.traceback or "")
    await _assert_serves(pool)


async def test_a_worker_killed_from_outside_fails_the_job_as_worker_lost(pool: WorkerPool) -> None:
    job = make_job("block")
    task = asyncio.create_task(pool.run(job))
    await logs(pool).wait_for(job.execution_id, "blocking")
    pid = pool.pid_of(job.execution_id)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)

    result = await task
    assert result.status == "Failed"
    assert result.error_type == "WorkerLost"
    assert "SIGKILL" in (result.error_message or "")
    await _assert_serves(pool)
    assert pid not in pool.pids()


async def test_an_idle_worker_dying_is_replaced(pool: WorkerPool) -> None:
    (pid,) = pool.pids()

    os.kill(pid, signal.SIGKILL)

    # Whether the job reaches the dead worker or waits for its replacement, it runs once and completes.
    await _assert_serves(pool)
    assert pool.pids() and pid not in pool.pids()


async def test_stop_fails_running_and_queued_jobs(make_pool: PoolFactory, main_workspace: Path, tmp_path: Path) -> None:
    pool = await make_pool(main_workspace)
    running = make_job("wait_for_file", {"path": str(tmp_path / "never")})
    running_task = asyncio.create_task(pool.run(running))
    await logs(pool).wait_for(running.execution_id, "waiting")
    queued_task = asyncio.create_task(pool.run(make_job("whoami")))
    await asyncio.sleep(0)
    pids = pool.pids()

    await pool.stop()

    result = await running_task
    assert result.status == "Failed" and result.error_type == "WorkerLost"
    # The queued one never reached a worker: marked so, the dispatcher leaves it PENDING for the next start.
    result = await queued_task
    assert result.status == "Failed" and result.error_type == "NotStarted"
    assert pool.pids() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="not running"):
        await pool.run(make_job("whoami"))


async def test_reload_picks_up_edited_added_and_removed_files(make_pool: PoolFactory, tmp_path: Path) -> None:
    version_v1 = """
        from bifrost import workflow

        @workflow
        async def version() -> int:
            return 1
    """
    hold = """
        import asyncio, os
        from bifrost import workflow

        @workflow
        async def hold(path: str) -> str:
            print("holding")
            while not os.path.exists(path):
                await asyncio.sleep(0.01)
            return "held"
    """
    workspace = write_workspace(tmp_path / "ws", {"version.py": version_v1, "hold.py": hold})
    pool = await make_pool(workspace, size=1)
    assert (await pool.run(make_job("version"))).result == 1

    # A busy worker finishes its job on the old code, then is replaced.
    release = tmp_path / "release"
    held = make_job("hold", {"path": str(release)})
    held_task = asyncio.create_task(pool.run(held))
    await logs(pool).wait_for(held.execution_id, "holding")
    # Same size as v1 and within the same second: stale bytecode caches must not hide it.
    write_workspace(workspace, {"version.py": version_v1.replace("return 1", "return 2")})
    (workspace / "hold.py").unlink()
    write_workspace(workspace, {"extra.py": version_v1.replace("def version", "def extra")})
    pool.reload()
    version_task = asyncio.create_task(pool.run(make_job("version")))
    await asyncio.sleep(0.05)
    assert not version_task.done()
    release.touch()

    assert (await held_task).result == "held"
    assert (await version_task).result == 2
    assert (await pool.run(make_job("extra"))).result == 1
    assert (await pool.run(make_job("hold", {"path": "x"}))).error_type == "NotFound"
    assert pool.last_scan is not None
    assert sorted(w["name"] for w in pool.last_scan.workflows) == ["extra", "version"]


async def test_reload_replaces_idle_workers_at_once(make_pool: PoolFactory, main_workspace: Path) -> None:
    pool = await make_pool(main_workspace, size=2)
    before = set(pool.pids())

    pool.reload()

    results = await asyncio.gather(*(pool.run(make_job("whoami")) for _ in range(4)))
    assert {r.status for r in results} == {"Completed"}
    assert not before & {r.result["pid"] for r in results}
    assert pool.stats()["generation"] == 1


async def test_a_workspace_file_that_kills_the_interpreter_is_found_by_the_scan_and_skipped(tmp_path: Path) -> None:
    fine = "from bifrost import workflow\n\n@workflow\nasync def fine() -> int:\n    return 1\n"
    workspace = write_workspace(tmp_path / "ws", {"boom.py": "import os\nos._exit(5)\n", "fine.py": fine})
    pool = WorkerPool(workspace, 2)

    # Told nothing, workers die on it ...
    with pytest.raises(WorkerStartError, match="exited with code 5 before it was ready"):
        await pool.start()
    assert pool.pids() == []
    # ... the scan finds it (the process ended while importing it) and names it, ...
    scan = await pool.scan()
    assert scan.skip == ["boom.py"]
    (error,) = scan.errors
    assert error["file"] == "boom.py" and "exited with code 5" in error["error"]
    assert [w["name"] for w in scan.workflows] == ["fine"]
    # ... and workers that skip it serve the other files.
    pool.skip = tuple(scan.skip)
    await pool.start()
    try:
        result = await pool.run(make_job("fine"))
        assert result.status == "Completed" and result.result == 1
    finally:
        await pool.stop()


async def test_a_worker_hanging_at_start_is_killed_after_the_start_timeout(tmp_path: Path) -> None:
    workspace = write_workspace(tmp_path / "ws", {"slow.py": "import time\ntime.sleep(60)\n"})
    pool = WorkerPool(workspace, 1, start_timeout=0.5)

    with pytest.raises(WorkerStartError, match=r"SIGKILL(.|\n)*not ready within 0.5 seconds"):
        await pool.start()
    assert pool.pids() == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its reaping is pending


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_workers_exit_when_the_server_process_dies(main_workspace: Path) -> None:
    script = f"""
import asyncio, sys
from app.engine.pool import WorkerPool
from app.engine.protocol import Job

async def main():
    pool = WorkerPool({str(main_workspace)!r}, 2)
    await pool.start()
    # One worker stuck in a job (it does not read its closed stdin), one idle.
    job = Job("e1", "workflow", "block", context={{"user_id": "u", "email": "e", "name": "n"}})
    asyncio.create_task(pool.run(job))
    while pool.stats()["busy"] < 1:
        await asyncio.sleep(0.01)
    print(*pool.pids(), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    pids = [int(p) for p in (await asyncio.wait_for(server.stdout.readline(), 30)).split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)

    server.kill()  # no chance to stop its pool
    await server.wait()

    try:
        for _ in range(100):
            if not any(_alive(pid) for pid in pids):
                break
            await asyncio.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
