"""Fault injection, approvals: a run waiting for approval survives a kill -9 of ``bifrost serve`` (issue 16).

Against a real server process, on SQLite and on Postgres: the run stays ``AwaitingApproval`` through the
kill and the restart's recovery (which fails runs left running and re-dispatches pending ones) with none
of its code run; approving it after the restart runs it, once.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.platform.faults_support import Serve, database, statuses, wait_gone

GUARDED = textwrap.dedent(
    """
    from bifrost import workflow


    @workflow(needs_approval=True)
    async def guarded(path: str) -> dict:
        with open(path, "a") as handle:
            handle.write("ran\\n")
        return {"ran": True}
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with database(request.param, tmp_path) as url:
        yield url


def test_a_run_awaiting_approval_survives_kill9_and_runs_once_approved(tmp_path: Path, database_url: str) -> None:
    serve = Serve(tmp_path, database_url)
    (serve.workspace / "guarded.py").write_text(GUARDED)
    serve.up()
    marker = tmp_path / "ran.txt"
    try:
        with serve.client() as client:
            # The key is the admin's: let the requester approve, so one account can decide after the restart.
            allowed = client.put("/api/workflows/guarded/access", json={"allow_self_approval": True})
            assert allowed.status_code == 200, allowed.text
            run_id = serve.submit(client, "guarded", path=str(marker))
            assert serve.execution(client, run_id)["status"] == "AwaitingApproval"
            assert [a["execution_id"] for a in client.get("/api/approvals").json()] == [run_id]
        workers = serve.workers()

        serve.kill9()

        assert wait_gone(workers) == [], "workers outlived the server"
        assert statuses(database_url)[run_id] == "AwaitingApproval"
        serve.start()
        with serve.client() as client:
            # Recovery has run (the server answers): a run it wrongly re-dispatched sits in the dispatcher's
            # queue ahead of anything submitted now, and the queue is taken in order. So once a run submitted
            # now has completed, such a run has been taken too (written Running, its code under way).
            probe = serve.submit(client, "noop", n=1)
            assert serve.wait_ended(client, probe)["status"] == "Completed"
            waiting = serve.execution(client, run_id)
            assert waiting["status"] == "AwaitingApproval" and waiting["started_at"] is None, waiting
            approval = client.get(f"/api/approvals/{run_id}").json()
            assert approval["status"] == "waiting" and approval["can_decide"] is True
            assert not marker.exists(), "the run's code ran before it was approved"
            decided = client.post(f"/api/approvals/{run_id}/approve", json={"reason": "after the restart"})
            assert decided.status_code == 200, decided.text
            ended = serve.wait_ended(client, run_id)
            assert ended["status"] == "Completed" and ended["result"] == {"ran": True}, ended
        assert marker.read_text() == "ran\n"  # once
    finally:
        serve.stop()
