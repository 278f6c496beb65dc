"""Fault injection, restarts: no queued run is lost or failed by a kill -9 or a SIGTERM of ``bifrost serve``.

Against a real server process, on SQLite and on Postgres. The figures these tests check are in
docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.platform.faults_support import Serve, database, statuses, wait_gone, wait_until

QUEUED = 500


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database(request.param, tmp_path) as url:
        yield url


def test_kill9_with_500_runs_queued_then_all_of_them_complete_after_restart(tmp_path: Path, database_url: str) -> None:
    serve = Serve(tmp_path, database_url).up()
    release = tmp_path / "release"
    try:
        with serve.client() as client:
            # Both workers busy, so everything after waits in the queue.
            holding = [serve.submit(client, "hold", path=str(release)) for _ in range(2)]
            wait_until(
                lambda: all(serve.execution(client, h)["status"] == "Running" for h in holding), 30, "holds to run"
            )
            queued = [serve.submit(client, "noop", n=i) for i in range(QUEUED)]
        before = Counter(statuses(database_url).values())
        assert before == {"Running": 2, "Pending": QUEUED}, before  # queued runs are not RUNNING
        workers = serve.workers()
        assert len(workers) == 2

        serve.kill9()

        assert wait_gone(workers) == [], "workers outlived the server"
        assert Counter(statuses(database_url).values()) == before  # nothing was written meanwhile
        release.touch()
        serve.start()
        with serve.client() as client:
            for execution_id in queued:
                assert serve.wait_ended(client, execution_id)["status"] == "Completed"
            for execution_id in holding:
                ended = serve.execution(client, execution_id)
                # It was running when the server died: it may have done part of its work, so it is
                # failed with the reason, never run a second time.
                assert ended["status"] == "Failed" and ended["error_type"] == "ServerRestarted"
                assert "restarted" in ended["error_message"]
        final = Counter(statuses(database_url).values())
        assert final == {"Completed": QUEUED, "Failed": 2}, final  # none lost, none stuck
    finally:
        release.touch()
        serve.stop()


def test_sigterm_lets_running_runs_finish_and_keeps_queued_ones_for_the_next_start(
    tmp_path: Path, database_url: str
) -> None:
    serve = Serve(tmp_path, database_url, shutdown_grace_seconds="60").up()
    release = tmp_path / "release"
    try:
        with serve.client() as client:
            holding = [serve.submit(client, "hold", path=str(release)) for _ in range(2)]
            wait_until(
                lambda: all(serve.execution(client, h)["status"] == "Running" for h in holding), 30, "holds to run"
            )
            queued = [serve.submit(client, "noop", n=i) for i in range(10)]
        workers = serve.workers()

        serve.terminate()
        # The server stops listening once it took the signal; only then may the running ones end.
        wait_until(lambda: not _answers(serve), 30, "the server to stop listening")
        assert serve.process is not None and serve.process.poll() is None  # still in its grace period
        release.touch()
        serve.wait_exit(60)

        assert wait_gone(workers) == []
        after = statuses(database_url)
        assert [after[h] for h in holding] == ["Completed", "Completed"]  # finished within the grace period
        assert [after[q] for q in queued] == ["Pending"] * 10  # left for the next start, not failed
        serve.start()
        with serve.client() as client:
            for execution_id in queued:
                assert serve.wait_ended(client, execution_id)["status"] == "Completed"
        assert Counter(statuses(database_url).values()) == {"Completed": 12}
    finally:
        release.touch()
        serve.stop()


def test_sigterm_fails_runs_still_running_after_the_grace_period(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as database_url:
        serve = Serve(tmp_path, database_url, shutdown_grace_seconds="0").up()
        try:
            with serve.client() as client:
                held = serve.submit(client, "hold", path=str(tmp_path / "never"))
                wait_until(lambda: serve.execution(client, held)["status"] == "Running", 30, "the hold to run")
            workers = serve.workers()
            serve.terminate()
            serve.wait_exit(60)
            assert wait_gone(workers) == []
            assert statuses(database_url)[held] == "Failed"  # with the reason, at once, not at the next start
            serve.start()
            with serve.client() as client:
                ended = serve.execution(client, held)
                assert ended["error_type"] == "WorkerLost" and "stopped" in ended["error_message"]
        finally:
            serve.stop()


def _answers(serve: Serve) -> bool:
    import httpx

    try:
        return httpx.get(f"{serve.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
