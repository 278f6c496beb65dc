"""The data layer on SQLite and on Postgres: the same flows, plus restart recovery."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import seed


def test_platform_flows_on_each_database(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(make_settings(tmp_path, database_url)).start()
    try:
        ids = server.call(lambda: seed(server.platform))
        with server.client(ids["alice_key"]) as alice:
            run = alice.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 2, "b": 3}}).json()
            assert run["status"] == "Completed" and run["result"] == {"sum": 5}
            assert run["started_at"].endswith("+00:00")
            assert (
                alice.get("/api/executions", params={"workflow_name": "add"}).json()[0]["execution_id"]
                == run["execution_id"]
            )
            logs = alice.get(f"/api/executions/{run['execution_id']}/logs").json()
            assert [line["message"] for line in logs] == ["adding 2 and 3"]
            bad = alice.post("/api/workflows/add/execute", json={"params": {"a": "x"}})
            assert bad.status_code == 422
        with server.client(ids["bob_key"]) as bob:
            assert bob.get(f"/api/executions/{run['execution_id']}").status_code == 404
        with server.client(ids["admin_key"], **{"X-Bifrost-Org": "Org A"}) as admin:
            role = admin.post("/api/roles", json={"name": "Ops"}).json()
            assert admin.post(f"/api/roles/{role['id']}/users", json={"user_ids": [ids["alice_id"]]}).status_code == 204
            assert admin.get(f"/api/roles/{role['id']}/users").json() == [ids["alice_id"]]
            sdk_run = admin.post("/api/workflows/list_orgs/execute?wait=true", json={}).json()
            assert sdk_run["status"] == "Completed" and set(sdk_run["result"]) >= {"Org A", "Org B"}
    finally:
        server.stop()


def test_restart_recovery(database_url: str, tmp_path: Path) -> None:
    """RUNNING executions of a dead server end FAILED; PENDING ones run after the restart."""
    settings = make_settings(tmp_path, database_url)
    server = LiveServer(settings).start()
    ids = server.call(lambda: seed(server.platform))

    async def leave_work_behind() -> tuple[str, str]:
        from app.db import transaction
        from app.models import Execution, stable_workflow_id

        async with transaction(server.platform.sessions) as session:
            running = Execution(
                workflow_id=stable_workflow_id("workflow", "add"),
                workflow_name="add",
                executed_by=ids["alice_id"],
                organization_id=ids["org_a"],
                status="Running",
                input_data={"a": 1, "b": 1},
            )
            pending = Execution(
                workflow_id=stable_workflow_id("workflow", "add"),
                workflow_name="add",
                executed_by=ids["alice_id"],
                organization_id=ids["org_a"],
                status="Pending",
                input_data={"a": 20, "b": 1},
            )
            session.add_all([running, pending])
        return running.id, pending.id

    running_id, pending_id = server.call(leave_work_behind)
    server.stop()

    restarted = LiveServer(make_settings(tmp_path / "again", database_url, workspace=settings.workspace)).start()
    try:
        with restarted.client(ids["alice_key"]) as alice:
            failed = alice.get(f"/api/executions/{running_id}").json()
            assert failed["status"] == "Failed" and "restarted" in failed["error_message"]
            for _ in range(100):
                done = alice.get(f"/api/executions/{pending_id}").json()
                if done["status"] == "Completed":
                    break
                time.sleep(0.05)
            assert done["result"] == {"sum": 21}
    finally:
        restarted.stop()
