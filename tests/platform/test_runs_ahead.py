"""``bifrost serve --runs-ahead``: queued runs handed to busy workers ahead, under kill -9 and SIGTERM.

A run taken ahead is written ``Running`` while every worker is busy and waits in the pool's queue, so the
first worker that finishes takes it without waiting for a commit. After a kill -9 of the server such a run
is failed ``ServerRestarted`` (it may have started: never run twice); after a SIGTERM the pool gives it back
and it runs at the next start. Runs beyond the ones ahead stay ``Pending`` and run after either.
Against a real server process, on SQLite and on Postgres.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.platform.faults_support import Serve, database, statuses, wait_gone, wait_until

QUEUED = 6


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database(request.param, tmp_path) as url:
        yield url


def _hold_two_and_queue(serve: Serve, release: Path) -> tuple[list[str], list[str]]:
    with serve.client() as client:
        holding = [serve.submit(client, "hold", path=str(release)) for _ in range(2)]
        wait_until(lambda: all(serve.execution(client, h)["status"] == "Running" for h in holding), 30, "holds to run")
        queued = [serve.submit(client, "noop", n=i) for i in range(QUEUED)]
    # One run ahead per busy worker: the first two queued are written Running, the rest stay Pending.
    wait_until(
        lambda: Counter(statuses(serve.env["BIFROST_DATABASE_URL"]).values()) == {"Running": 4, "Pending": QUEUED - 2},
        30,
        "two runs to be taken ahead",
    )
    return holding, queued


def test_kill9_fails_the_runs_taken_ahead_and_runs_the_pending_ones(tmp_path: Path, database_url: str) -> None:
    serve = Serve(tmp_path, database_url, runs_ahead_per_worker="1").up()
    release = tmp_path / "release"
    try:
        holding, queued = _hold_two_and_queue(serve, release)
        status = statuses(database_url)
        ahead, pending = queued[:2], queued[2:]
        assert [status[q] for q in ahead] == ["Running", "Running"]  # oldest first
        assert {status[q] for q in pending} == {"Pending"}
        workers = serve.workers()

        serve.kill9()

        assert wait_gone(workers) == [], "workers outlived the server"
        assert statuses(database_url) == status  # nothing was written meanwhile
        release.touch()
        serve.start()
        with serve.client() as client:
            for execution_id in pending:
                assert serve.wait_ended(client, execution_id)["status"] == "Completed"
            for execution_id in holding + ahead:
                ended = serve.execution(client, execution_id)
                # Running when the server died: failed with the reason, never run a second time.
                assert ended["status"] == "Failed" and ended["error_type"] == "ServerRestarted", ended
        assert Counter(statuses(database_url).values()) == {"Completed": QUEUED - 2, "Failed": 4}
    finally:
        release.touch()
        serve.stop()


def test_sigterm_gives_the_runs_taken_ahead_back_for_the_next_start(tmp_path: Path, database_url: str) -> None:
    serve = Serve(tmp_path, database_url, runs_ahead_per_worker="1", shutdown_grace_seconds="60").up()
    release = tmp_path / "release"
    try:
        holding, queued = _hold_two_and_queue(serve, release)
        workers = serve.workers()

        serve.terminate()
        # The server stops listening once it took the signal; only then may the running ones end.
        wait_until(lambda: not _answers(serve), 30, "the server to stop listening")
        release.touch()  # the holds finish within the grace period; the runs ahead must not start
        serve.wait_exit(60)

        assert wait_gone(workers) == []
        after = statuses(database_url)
        assert [after[h] for h in holding] == ["Completed", "Completed"]
        assert [after[q] for q in queued] == ["Pending"] * QUEUED  # the two ahead never started: Pending again
        serve.start()
        with serve.client() as client:
            for execution_id in queued:
                assert serve.wait_ended(client, execution_id)["status"] == "Completed"
        assert Counter(statuses(database_url).values()) == {"Completed": QUEUED + 2}
    finally:
        release.touch()
        serve.stop()


def test_without_the_option_no_queued_run_is_written_running(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as database_url:
        serve = Serve(tmp_path, database_url).up()
        release = tmp_path / "release"
        try:
            with serve.client() as client:
                holding = [serve.submit(client, "hold", path=str(release)) for _ in range(2)]
                wait_until(
                    lambda: all(serve.execution(client, h)["status"] == "Running" for h in holding), 30, "holds to run"
                )
                queued = [serve.submit(client, "noop", n=i) for i in range(3)]
                assert Counter(statuses(database_url).values()) == {"Running": 2, "Pending": 3}
                release.touch()
                for execution_id in queued:
                    assert serve.wait_ended(client, execution_id)["status"] == "Completed"
        finally:
            release.touch()
            serve.stop()


def _answers(serve: Serve) -> bool:
    import httpx

    try:
        httpx.get(f"{serve.url}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True
