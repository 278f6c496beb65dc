"""Fault injection, processes and memory: every process a run started ends with the run, however it ends,
and a run past its memory limit fails ``MemoryLimitExceeded`` with its worker replaced.

Against a real ``bifrost serve`` process (the database plays no part here: SQLite). Each run starts a
plain child, a ``setsid`` child and a double-forked daemon (see ``_spawn`` in faults_support).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.faults_support import Serve, alive, database, descendants, wait_gone, wait_until


def _server(root: Path) -> Iterator[Serve]:
    with database("sqlite", root) as url:
        server = Serve(root, url, run_memory_mb="150").init().start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """One server for the tests that leave it running (each checks it still serves afterwards)."""
    yield from _server(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def own_serve(tmp_path: Path) -> Iterator[Serve]:
    yield from _server(tmp_path)


def _pids(pid_file: Path) -> list[int]:
    wait_until(pid_file.exists, 30, "the run to start its processes")
    *started, _worker = (int(p) for p in pid_file.read_text().split())
    return started


@pytest.mark.parametrize("how", ["returns", "times_out", "is_cancelled", "kills_its_worker"])
def test_processes_a_run_started_end_with_the_run(serve: Serve, tmp_path: Path, how: str) -> None:
    pid_file = tmp_path / f"{how}.pids"
    with serve.client() as client:
        if how == "times_out":
            execution_id = serve.submit(client, "spawn_and_time_out", pid_file=str(pid_file))
        else:
            mode = {"returns": "return", "is_cancelled": "block", "kills_its_worker": "die"}[how]
            execution_id = serve.submit(client, "spawn", pid_file=str(pid_file), mode=mode)
        started = _pids(pid_file)
        if how in ("is_cancelled", "times_out"):
            assert all(alive(p) for p in started)  # a blocked run's processes live until it ends
        if how == "is_cancelled":
            assert client.post(f"/api/executions/{execution_id}/cancel").status_code == 200
        ended = serve.wait_ended(client, execution_id)
        expected = {
            "returns": ("Completed", None),
            "times_out": ("Failed", "TimeoutError"),
            "is_cancelled": ("Cancelled", "Cancelled"),
            "kills_its_worker": ("Failed", "WorkerLost"),
        }[how]
        assert (ended["status"], ended["error_type"]) == expected

        assert wait_gone(started) == [], f"processes outlived a run that {how}"
        # The platform still serves, with its two workers and nothing else below the server.
        assert serve.submit(client, "noop") and serve.wait_ended(client, serve.submit(client, "noop"))
        wait_until(lambda: len(serve.workers()) == 2, 30, "two workers")
        assert len(serve.fork_servers()) == 1
        assert sorted(descendants(serve.pid)) == sorted(serve.fork_servers() + serve.workers())


def test_processes_of_a_run_end_when_the_server_is_killed(own_serve: Serve, tmp_path: Path) -> None:
    serve = own_serve
    pid_file = tmp_path / "server-killed.pids"
    with serve.client() as client:
        serve.submit(client, "spawn", pid_file=str(pid_file), mode="block")
        started = _pids(pid_file)
    assert all(alive(p) for p in started)
    everything = descendants(serve.pid)
    assert set(started) <= set(everything)
    assert set(serve.fork_servers()) | set(serve.workers()) <= set(everything)

    serve.kill9()

    assert wait_gone(everything) == [], "processes outlived the server"


def test_a_run_past_its_memory_limit_fails_clearly_and_its_worker_is_replaced(serve: Serve) -> None:
    with serve.client() as client:
        before = set(serve.workers())
        ended = serve.wait_ended(client, serve.submit(client, "hog", mb=600))
        assert ended["status"] == "Failed" and ended["error_type"] == "MemoryLimitExceeded"
        assert "150 MB" in ended["error_message"]  # names the limit
        wait_until(lambda: len(serve.workers()) == 2 and set(serve.workers()) != before, 30, "a new worker")
        # Under the limit is fine, on the replacement worker too.
        small = serve.wait_ended(client, serve.submit(client, "hog", mb=20))
        assert small["status"] == "Completed" and small["result"] == 20 * 1024 * 1024


def test_memory_of_the_processes_a_run_started_counts_too(serve: Serve) -> None:
    with serve.client() as client:
        # Each child stays under the limit on its own; together they are well past it.
        ended = serve.wait_ended(client, serve.submit(client, "hog_children", mb_each=70, count=4))
        assert ended["status"] == "Failed" and ended["error_type"] == "MemoryLimitExceeded"
        assert "150 MB" in ended["error_message"]
        wait_until(lambda: len(serve.workers()) == 2, 30, "two workers")
        assert sorted(descendants(serve.pid)) == sorted(serve.fork_servers() + serve.workers())  # children went too
        assert serve.wait_ended(client, serve.submit(client, "noop"))["status"] == "Completed"
