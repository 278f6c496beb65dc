"""A run that can start at once is written RUNNING by the submit; one that must queue is PENDING."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed


def _wait_for(client, execution_id: str, status: str) -> dict:  # type: ignore[no-untyped-def]
    for _ in range(400):
        state = client.get(f"/api/executions/{execution_id}").json()
        if state["status"] == status:
            return state  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} never reached {status}: {state}")


def test_free_worker_claims_the_run_busy_pool_queues_it(tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, workers=1)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        with server.client(ids["alice_key"]) as alice:
            first = alice.post("/api/workflows/sleeper/execute", json={"params": {"seconds": 30}}).json()
            # The only worker was idle: the submit wrote it RUNNING with its start time.
            assert first["status"] == "Running"
            stored = alice.get(f"/api/executions/{first['execution_id']}").json()
            assert stored["status"] == "Running" and stored["started_at"]

            second = alice.post("/api/workflows/add/execute", json={"params": {"a": 1, "b": 2}}).json()
            # The worker is taken: no claim, so the submit wrote it PENDING (the dispatcher marks it
            # RUNNING with a separate write when it hands it to the pool's queue).
            assert second["status"] == "Pending"

            cancelled = alice.post(f"/api/executions/{first['execution_id']}/cancel")
            assert cancelled.status_code in (200, 201)
            _wait_for(alice, first["execution_id"], "Cancelled")
            done = _wait_for(alice, second["execution_id"], "Completed")
            assert done["result"] == {"sum": 3} and done["started_at"]

            # The worker is free again: the next run is claimed, and the SDK token of a claimed run works.
            third = alice.post("/api/workflows/list_my_executions/execute?wait=true", json={}).json()
            assert third["status"] == "Completed", third
            assert {first["execution_id"], second["execution_id"]} <= set(third["result"])
    finally:
        server.stop()
