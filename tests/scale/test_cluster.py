"""Scale-out (issue 18): two servers and two worker nodes as real processes on one Postgres.

Runs are submitted to both servers; procrastinate hands each to one node; the tests read the outcome
from the API and the database, and which process ran what from files the runs wrote themselves.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.platform.faults_support import wait_until
from tests.scale.cluster_support import Cluster, client, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

RUNS = 1000


def _submit(c: Cluster, count: int, workflow: str = "record", **params: object) -> list[str]:
    """Submit ``count`` runs, alternating between the two servers, from a few threads."""
    servers = [c.a, c.b]

    def one(n: int) -> str:
        server = servers[n % 2]
        with client(server) as api:
            response = api.post(f"/api/workflows/{workflow}/execute", json={"params": params})
        assert response.status_code == 202, response.text
        return str(response.json()["execution_id"])

    with ThreadPoolExecutor(max_workers=4) as threads:
        return list(threads.map(one, range(count)))


def test_a_thousand_runs_over_two_servers_run_once_each_on_both_nodes(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        ids = _submit(c, RUNS, folder=str(c.runs_folder))

        def all_ended() -> bool:
            rows = c.rows()
            return sum(rows[i]["status"] in ("Completed", "Failed", "Cancelled") for i in ids) == len(ids)

        wait_until(all_ended, 240, f"{RUNS} runs to end")
        rows = c.rows()
        failed = [rows[i] for i in ids if rows[i]["status"] != "Completed"]
        assert not failed, f"{len(failed)} runs did not complete, e.g. {failed[0]}\n{c.node_a.log_tail()}"
        recorded = c.recorded_runs()
        assert sorted(recorded) == sorted(ids)  # each ran, and ran exactly once
        nodes = {rows[i]["node"] for i in ids}
        assert nodes == {"node-a", "node-b"}
