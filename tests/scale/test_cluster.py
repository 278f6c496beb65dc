"""Scale-out (issue 18): two servers and two worker nodes as real processes on one Postgres.

Runs are submitted to both servers; procrastinate hands each to one node; the tests read the outcome
from the API and the database, and which process ran what from files the runs wrote themselves.

The tests that leave the cluster healthy share one (``shared``: servers A and B, node A alone); each
uses its own runs (and its own folder for ``record``'s files) and asserts only about them. The tests
that kill or restart processes, or need other node settings, start their own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.platform.faults_support import Serve, database, statuses, wait_until
from tests.scale.cluster_support import CLUSTER_SETTINGS, CLUSTER_WORKFLOWS, Cluster, client, cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

RUNS = 1000
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "fault-injection"  # tests/platform/faults_support.Serve


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Servers A and B and node A alone, for the tests that leave them running; stopped after the module.

    Node A writes a run's log lines to the database only at the run's end: a line server B shows while
    the run goes on can only have come live, across processes.
    """
    root = tmp_path_factory.mktemp("shared-cluster")
    with database("postgres", root) as url:
        running = Cluster(root, url)
        running.node_a.env["BIFROST_LOG_FLUSH_SECONDS"] = "600"
        try:
            yield running.init().start_with(running.node_a)
        finally:
            running.stop()


def _submit(c: Cluster, count: int, workflow: str = "record", **params: object) -> list[str]:
    """Submit ``count`` runs, alternating between the two servers, from four threads.

    Each thread keeps one client (and its connection) to its server for all its runs: a client per run
    cost a new client and connection each, in the test's own process, on the cores the cluster runs on.
    """
    servers = [c.a, c.b]
    threads = 4

    def some(first: int) -> list[str]:  # runs first, first + 4, ...: all on the same server
        with client(servers[first % 2]) as api:
            ids = []
            for _ in range(first, count, threads):
                response = api.post(f"/api/workflows/{workflow}/execute", json={"params": params})
                assert response.status_code == 202, response.text
                ids.append(str(response.json()["execution_id"]))
            return ids

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [execution_id for ids in pool.map(some, range(threads)) for execution_id in ids]


def test_a_thousand_runs_over_two_servers_run_once_each_on_both_nodes(shared: Cluster, tmp_path: Path) -> None:
    c = shared
    c.node_b.start().wait_ready()  # the shared cluster runs node A alone; both nodes here
    try:
        ids = _submit(c, RUNS, folder=str(tmp_path))

        def all_ended() -> bool:
            rows = c.rows()
            return sum(rows[i]["status"] in ("Completed", "Failed", "Cancelled") for i in ids) == len(ids)

        wait_until(all_ended, 240, f"{RUNS} runs to end")
        rows = c.rows()
        failed = [rows[i] for i in ids if rows[i]["status"] != "Completed"]
        assert not failed, f"{len(failed)} runs did not complete, e.g. {failed[0]}\n{c.node_a.log_tail()}"
        recorded = c.recorded_runs(tmp_path)
        assert sorted(recorded) == sorted(ids)  # each ran, and ran exactly once
        nodes = {rows[i]["node"] for i in ids}
        assert nodes == {"node-a", "node-b"}
    finally:
        c.node_b.stop()  # node A alone again for the other tests of the shared cluster


def _sse_raw(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs of a server-sent event stream, the data as sent (one line each here)."""
    event = "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].removeprefix(" ")
            yield (event, data) if data else ("keep-alive", "")  # sent after 15 s without an event
            event = "message"


def _sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a server-sent event stream of JSON."""
    for event, data in _sse_raw(response):
        yield event, json.loads(data) if data else {}


def test_live_logs_of_a_run_on_node_a_are_streamed_by_server_b(shared: Cluster) -> None:
    c = shared  # node A alone, writing its log lines to the database only at the end of a run
    with client(c.a) as api_a:
        # No delay before the first line: B's viewer may subscribe after the node published it (B's hub
        # kept it: see the next test).
        params = {"lines": 60, "every": 0.1}
        response = api_a.post("/api/workflows/chatty/execute", json={"params": params})
    execution_id = response.json()["execution_id"]
    seen: list[int] = []
    status_at_first_line = None
    with client(c.b) as api_b, api_b.stream("GET", f"/api/executions/{execution_id}/stream") as stream:
        assert stream.status_code == 200
        for event, data in _sse_events(stream):
            if event == "log":
                if not seen:
                    status_at_first_line = c.row(execution_id)["status"]
                seen.append(data["seq"])
            elif event == "status" and data.get("done"):
                assert data["status"] == "Completed"
                break
    assert status_at_first_line == "Running"
    assert seen == list(range(60))
    assert c.row(execution_id)["node"] == "node-a"


def test_a_viewer_joining_late_on_server_b_gets_every_line_node_a_has_not_stored(
    shared: Cluster, tmp_path: Path
) -> None:
    c = shared  # node A stores the run's lines only at its end
    logged, gate = tmp_path / "logged", tmp_path / "gate"
    params = {"lines": 200, "logged": str(logged), "gate": str(gate)}
    with client(c.a) as api_a:
        execution_id = api_a.post("/api/workflows/burst/execute", json={"params": params}).json()["execution_id"]
    wait_until(logged.exists, 60, "the run to log its lines")
    time.sleep(1.0)  # the lines reach node A through the pipe and B through the bus (milliseconds)
    with client(c.b) as api_b:
        assert api_b.get(f"/api/executions/{execution_id}/logs").json() == []  # none stored
    with httpx.Client(base_url=c.b.url, timeout=30) as browser:
        signed_in = browser.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert signed_in.status_code == 200, signed_in.text
        cookies = dict(browser.cookies)
    # Both live views of server B, opened after every line was published: the API's and the run page's.
    api_seqs: list[int] = []
    page_lines: list[str] = []
    with client(c.b) as api_b, api_b.stream("GET", f"/api/executions/{execution_id}/stream") as stream:
        assert stream.status_code == 200
        events = _sse_events(stream)  # without the kept lines: nothing until the end (the gate waits)
        for event, data in events:
            assert event != "keep-alive", f"15 s without a line after {len(api_seqs)} of 200"
            if event == "log":
                api_seqs.append(data["seq"])
                if len(api_seqs) == 200:
                    break
            else:
                assert not data.get("done"), data
        with httpx.stream("GET", f"{c.b.url}/executions/{execution_id}/live", cookies=cookies, timeout=30) as page:
            assert page.status_code == 200
            for event, html in _sse_raw(page):
                assert event != "keep-alive", f"15 s without a line after {len(page_lines)} of 200"
                if event == "log":
                    page_lines.append(html)
                    if len(page_lines) == 200:
                        break
        assert c.row(execution_id)["status"] == "Running"  # every line came before the end
        gate.touch()
        ends = [data for event, data in events if event == "status"]
    assert api_seqs == list(range(200))
    assert [f" line {n}</li>" in html for n, html in enumerate(page_lines)] == [True] * 200
    assert (ends[-1]["status"], ends[-1]["done"]) == ("Completed", True)
    with client(c.b) as api_b:
        stored = api_b.get(f"/api/executions/{execution_id}/logs").json()
    assert [row["seq"] for row in stored] == list(range(200))


def test_the_sdk_token_of_a_run_that_ended_on_a_node_is_refused_at_once_by_server_b(
    shared: Cluster, tmp_path: Path
) -> None:
    c = shared
    token_file, gate = tmp_path / "token", tmp_path / "gate"
    with client(c.a) as api_a:
        execution_id = api_a.post(
            "/api/workflows/token_then_wait/execute", json={"params": {"path": str(token_file), "gate": str(gate)}}
        ).json()["execution_id"]
    wait_until(token_file.exists, 60, "the run's SDK token")
    token = token_file.read_text()
    assert token
    own_run = f"/api/sdk/v1/executions/{execution_id}"
    with httpx.Client(base_url=c.b.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as sdk_b:
        assert sdk_b.get(own_run).status_code == 200  # resolved on B, and kept in B's cache (5 s)
        with client(c.b) as api_b, api_b.stream("GET", f"/api/executions/{execution_id}/stream") as stream:
            events = _sse_events(stream)
            assert sdk_b.get(own_run).status_code == 200  # the cache is fresh as the run ends
            gate.touch()
            ended = next(data for event, data in events if event == "status" and data.get("done"))
        assert ended["status"] == "Completed"
        # B has seen the end on the bus: the token no longer resolves there, cache or not.
        refused = sdk_b.get(own_run)
    assert refused.status_code == 401, refused.text


def test_cancel_from_server_b_stops_a_run_on_node_a_and_timeouts_hold(shared: Cluster, tmp_path: Path) -> None:
    c = shared
    with client(c.a) as api_a:
        execution_id = api_a.post("/api/workflows/linger/execute", json={"params": {"seconds": 110}}).json()[
            "execution_id"
        ]
    assert c.wait_status(execution_id, {"Running"})["node"] == "node-a"
    with client(c.b) as api_b:
        response = api_b.post(f"/api/executions/{execution_id}/cancel")
        assert response.status_code == 200, response.text
        row = c.wait_status(execution_id, {"Completed", "Failed", "Cancelled"})
        assert row["status"] == "Cancelled"
        assert api_b.get(f"/api/executions/{execution_id}").json()["status"] == "Cancelled"
    # A timeout is enforced by the node running the run, whichever server took it.
    with client(c.b) as api_b:
        overrun = api_b.post("/api/workflows/overrun/execute", json={"params": {}}).json()["execution_id"]
    row = c.wait_status(overrun, {"Completed", "Failed", "Cancelled"})
    assert (row["status"], row["error_type"], row["node"]) == ("Failed", "TimeoutError", "node-a")
    # The node is free again: its next run completes.
    with client(c.b) as api_b:
        done = api_b.post("/api/workflows/record/execute?wait=true", json={"params": {"folder": str(c.runs_folder)}})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "Completed"


def test_kill9_of_node_a_fails_its_running_run_and_node_b_runs_its_queue(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=("a",), node_workers=1) as c:
        with client(c.a) as api_a:
            lingering = api_a.post("/api/workflows/linger/execute", json={"params": {"seconds": 110}}).json()[
                "execution_id"
            ]
        assert c.wait_status(lingering, {"Running"})["node"] == "node-a"
        queued = _submit(c, 6, folder=str(c.runs_folder))  # node A runs one at a time: these wait
        assert {c.rows()[i]["status"] for i in queued} == {"Pending"}
        c.node_a.kill9()
        c.node_b.start().wait_ready()
        for execution_id in queued:
            row = c.wait_status(execution_id, {"Completed", "Failed", "Cancelled"})
            assert (row["status"], row["node"]) == ("Completed", "node-b")
        lost = c.wait_status(lingering, {"Completed", "Failed", "Cancelled"})
        assert lost["status"] == "Failed"
        assert lost["error_type"] == "WorkerLost"
        assert "node-a" in lost["error_message"]
        assert sorted(c.recorded_runs()) == sorted(queued)


def test_kill9_of_server_a_loses_no_run_and_runs_none_twice(tmp_path: Path) -> None:
    with cluster(tmp_path, nodes=("a",), node_workers=2) as c:
        folder = str(c.runs_folder)
        answers: dict[int, httpx.Response | Exception] = {}

        def wait_for_run(n: int) -> None:  # a client waiting on A for its run's outcome when A dies
            with client(c.a) as api_a:
                try:
                    answers[n] = api_a.post(
                        "/api/workflows/record/execute?wait=true", json={"params": {"folder": folder, "seconds": 4}}
                    )
                except httpx.HTTPError as error:
                    answers[n] = error

        waiting = [threading.Thread(target=wait_for_run, args=(n,)) for n in range(4)]
        for thread in waiting:
            thread.start()
        queued = []
        with client(c.a) as api_a:  # node A runs two at a time: most of these wait in the queue
            for _ in range(8):
                response = api_a.post(
                    "/api/workflows/record/execute", json={"params": {"folder": folder, "seconds": 1}}
                )
                assert response.status_code == 202, response.text
                queued.append(response.json()["execution_id"])
        wait_until(lambda: len(c.rows()) == 12, 60, "the waiting clients' runs to be stored")
        wait_until(lambda: sum(r["status"] == "Running" for r in c.rows().values()) == 2, 60, "two runs on node A")

        # Runs submitted up to the very kill: each is answered (202: it must then run) or cut off.
        accepted: list[str] = []
        stop = threading.Event()

        def submit_until_killed() -> None:
            with client(c.a) as api_a:
                while not stop.is_set():
                    try:
                        response = api_a.post("/api/workflows/record/execute", json={"params": {"folder": folder}})
                    except httpx.HTTPError:
                        return
                    assert response.status_code == 202, response.text
                    accepted.append(response.json()["execution_id"])

        submitter = threading.Thread(target=submit_until_killed)
        submitter.start()
        wait_until(lambda: len(accepted) >= 3, 60, "runs submitted just before the kill")
        c.a.kill9()
        stop.set()
        submitter.join(60)
        for thread in waiting:
            thread.join(60)
        assert all(isinstance(answer, httpx.HTTPError) for answer in answers.values()), answers  # cut off
        assert any(row["status"] in ("Pending", "Running") for row in c.rows().values())

        # A starts again while node A still runs them: its start-up leaves the node's runs alone.
        c.a.start()
        with client(c.b) as api_b:

            def all_ended() -> bool:
                rows = api_b.get("/api/executions", params={"limit": 500}).json()
                return bool(rows) and all(row["status"] in ("Completed", "Failed", "Cancelled") for row in rows)

            wait_until(all_ended, 120, "every run to end, as server B shows")
            shown = {row["execution_id"]: row["status"] for row in api_b.get("/api/executions?limit=500").json()}
        rows = c.rows()
        assert shown == {execution_id: "Completed" for execution_id in rows}, rows
        assert set(queued) | set(accepted) <= set(rows)  # every answered run was stored
        # The waiting clients' four, and at most one more: a submit A had taken when it died.
        assert len(queued) + len(accepted) + 4 <= len(rows) <= len(queued) + len(accepted) + 5
        assert sorted(c.recorded_runs()) == sorted(rows)  # each stored run ran, exactly once
        assert {row["node"] for row in rows.values()} == {"node-a"}


def test_a_restart_of_every_process_loses_no_queued_run(shared: Cluster, tmp_path: Path) -> None:
    c = shared  # restarted here: both servers, node A, and node B (which the shared cluster does not run)
    c.node_a.stop()
    try:
        queued = _submit(c, 20, folder=str(tmp_path))
        assert {c.rows()[i]["status"] for i in queued} == {"Pending"}
        c.a.stop()
        c.b.stop()
        c.start_with(c.node_a, c.node_b)
        for execution_id in queued:
            assert c.wait_status(execution_id, {"Completed", "Failed", "Cancelled"})["status"] == "Completed"
        assert sorted(c.recorded_runs(tmp_path)) == sorted(queued)
    finally:
        c.node_b.stop()  # node A alone again for the other tests of the shared cluster


def test_a_server_with_serve_runs_jobs_runs_queued_runs_itself(tmp_path: Path) -> None:
    with database("postgres", tmp_path) as url:
        settings = {**CLUSTER_SETTINGS, "serve_runs_jobs": "true", "node_name": "in-server"}
        server = Serve(tmp_path / "server", url, workers=2, **settings)
        (server.workspace / "cluster.py").write_text(CLUSTER_WORKFLOWS)
        try:
            server.init().start()
            with client(server) as api:
                response = api.post(
                    "/api/workflows/record/execute?wait=true", json={"params": {"folder": str(tmp_path)}}
                )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "Completed"
            execution_id = response.json()["execution_id"]
            assert statuses(url)[execution_id] == "Completed"
            assert (tmp_path / f"{response.json()['result']}.runs").read_text().split() == [execution_id]
        finally:
            server.stop()
