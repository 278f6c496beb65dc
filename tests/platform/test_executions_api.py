"""The execution engine through the JSON API, over real HTTP, on a live platform."""

from __future__ import annotations

import json
import time

from tests.platform.conftest import World


def execute(world: World, key: str, name: str, params: dict | None = None, **body: object) -> dict:
    with world.server.client(key) as client:
        response = client.post(f"/api/workflows/{name}/execute?wait=true", json={"params": params or {}, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_wait_returns_the_result_and_the_record(world: World) -> None:
    run = execute(world, world.alice_key, "add", {"a": "40"})
    assert run["status"] == "Completed"
    assert run["result"] == {"sum": 42}
    assert run["input_data"] == {"a": 40, "b": 2}
    assert run["org_id"] == world.org_a
    assert run["executed_by"] == world.alice_id
    assert run["duration_ms"] is not None and run["started_at"] and run["completed_at"]
    # the answer of ?wait=true is exactly what was stored
    with world.server.client(world.alice_key) as client:
        stored = client.get(f"/api/executions/{run['execution_id']}").json()
    assert stored == run


def test_async_execute_returns_id_then_completes(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        response = client.post("/api/workflows/add/execute", json={"params": {"a": 1, "b": 1}})
        assert response.status_code == 202
        body = response.json()
        # "Running" when a worker was free at submit (written RUNNING at once), else "Pending"
        assert body["status"] in {"Pending", "Running"} and body["status_url"].endswith(body["execution_id"])
        for _ in range(200):
            state = client.get(body["status_url"]).json()
            if state["status"] == "Completed":
                break
            time.sleep(0.05)
        assert state["result"] == {"sum": 2}


def test_bad_params_get_one_error_per_field_and_write_nothing(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        before = client.get("/api/executions", params={"limit": 1000}).json()
        response = client.post("/api/workflows/add/execute", json={"params": {"a": "not a number", "b": 1, "zzz": 3}})
        after = client.get("/api/executions", params={"limit": 1000}).json()
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in response.json()["extra"]["errors"]}
    assert set(errors) == {"a", "zzz"}
    assert "integer" in errors["a"] and errors["zzz"] == "unknown parameter"
    assert len(after) == len(before)


def test_missing_required_param_is_named(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        response = client.post("/api/workflows/add/execute", json={"params": {}})
    assert response.status_code == 422
    assert response.json()["extra"]["errors"] == [{"field": "a", "message": "this parameter is required"}]


def test_typed_params_dates_and_models(world: World) -> None:
    run = execute(world, world.alice_key, "typed", {"day": "2026-01-31", "point": {"x": "1", "y": 2}})
    assert run["result"] == {"day": "2026-01-31", "point": {"x": 1, "y": 2}, "tags": []}
    with world.server.client(world.alice_key) as client:
        bad = client.post("/api/workflows/typed/execute", json={"params": {"day": "31/01/2026", "point": {"x": 1}}})
    fields = {e["field"] for e in bad.json()["extra"]["errors"]}
    assert bad.status_code == 422 and fields == {"day", "point.y"}


def test_unknown_workflow_is_404_and_no_auth_is_401(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        assert client.post("/api/workflows/nope/execute", json={}).status_code == 404
    with world.server.client() as anonymous:
        response = anonymous.post("/api/workflows/add/execute", json={"params": {"a": 1}})
        assert response.status_code == 401
        assert anonymous.get("/api/executions").status_code == 401
    with world.server.client("bfk_deadbeef_wrong") as wrong:
        assert wrong.get("/api/workflows").status_code == 401


def test_user_error_message_is_shown_as_is(world: World) -> None:
    run = execute(world, world.alice_key, "user_fails")
    assert run["status"] == "Failed"
    assert run["error_message"] == "The mailbox is full; ask IT to raise the quota."
    assert run["traceback"] is None


def test_unexpected_error_is_generic_for_users_and_detailed_for_admins(world: World) -> None:
    run = execute(world, world.alice_key, "crashes")
    assert run["status"] == "Failed"
    assert "secret internal detail" not in json.dumps(run)
    assert run["traceback"] is None
    with world.server.client(world.admin_key) as admin:
        detail = admin.get(f"/api/executions/{run['execution_id']}").json()
    assert "KeyError" in detail["error_message"] and "secret internal detail" in detail["error_message"]
    assert "Traceback" in detail["traceback"] and "crashes" in detail["traceback"]


def test_unserialisable_result_fails_clearly(world: World) -> None:
    run = execute(world, world.admin_key, "unserialisable")
    assert run["status"] == "Failed"
    assert "serial" in run["error_message"].lower() and "object" in run["error_message"]


def test_timeouts_kill_cpu_bound_and_blocking_code(world: World) -> None:
    for name in ("cpu_forever", "blocking_sleep"):
        run = execute(world, world.alice_key, name)
        assert run["status"] == "Failed", name
        assert run["error_type"] == "TimeoutError"
        assert "1 second" in run["error_message"]
    # the pool replaced the killed workers and still serves
    assert execute(world, world.alice_key, "add", {"a": 1})["result"] == {"sum": 3}


def test_worker_death_fails_the_execution_and_pool_recovers(world: World) -> None:
    for name in ("hard_exit", "segfault"):
        run = execute(world, world.alice_key, name)
        assert run["status"] == "Failed"
        assert run["error_type"] == "WorkerLost"
    assert execute(world, world.alice_key, "add", {"a": 5})["result"] == {"sum": 7}


def test_cancel_a_running_execution(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        started = client.post("/api/workflows/sleeper/execute", json={"params": {"seconds": 60}}).json()
        eid = started["execution_id"]
        for _ in range(100):
            if client.get(f"/api/executions/{eid}").json()["status"] == "Running":
                break
            time.sleep(0.05)
        cancelled = client.post(f"/api/executions/{eid}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "Cancelled"
        again = client.post(f"/api/executions/{eid}/cancel")
        assert again.status_code == 422
    with world.server.client(world.bob_key) as other:
        assert other.post(f"/api/executions/{eid}/cancel").status_code == 404


def test_logs_are_captured_at_every_level_with_print(world: World) -> None:
    run = execute(world, world.alice_key, "chatty")
    with world.server.client(world.alice_key) as client:
        logs = client.get(f"/api/executions/{run['execution_id']}/logs").json()
    messages = [(line["level"], line["message"]) for line in logs]
    for expected in [
        ("DEBUG", "debug line"),
        ("INFO", "info line"),
        ("WARNING", "warning line"),
        ("ERROR", "error line"),
    ]:
        assert expected in messages
    assert any("printed line" in m for _, m in messages)
    assert [line["seq"] for line in logs] == sorted(line["seq"] for line in logs)
    assert all(line["timestamp"] for line in logs)


def test_live_log_stream_delivers_lines_before_the_end(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        eid = client.post("/api/workflows/slow_logger/execute", json={"params": {"steps": 3, "delay": 0.3}}).json()[
            "execution_id"
        ]
        events: list[tuple[str, dict]] = []
        with client.stream("GET", f"/api/executions/{eid}/stream") as stream:
            name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((name or "", json.loads(line[5:])))
                    if events[-1][1].get("done"):
                        break
    log_messages = [data["message"] for kind, data in events if kind == "log"]
    assert log_messages == ["step 0", "step 1", "step 2"]
    statuses = [data["status"] for kind, data in events if kind == "status"]
    assert statuses[-1] == "Completed"
    # a log line arrived while the execution was still running
    first_log = next(i for i, (kind, _) in enumerate(events) if kind == "log")
    assert (
        any(kind == "status" and not data.get("done") for kind, data in events[: first_log + 1])
        or first_log < len(events) - 1
    )


def test_context_is_bound_to_the_execution(world: World) -> None:
    run = execute(world, world.alice_key, "whoami")
    ctx = run["result"]
    assert ctx["user_id"] == world.alice_id and ctx["email"] == "alice@a.example"
    assert ctx["org_id"] == world.org_a and ctx["org_name"] == "Org A" and ctx["scope"] == world.org_a
    assert ctx["execution_id"] == run["execution_id"]
    assert ctx["is_platform_admin"] is False and ctx["is_global_scope"] is False
    assert ctx["is_function_key"] is True
    admin_run = execute(world, world.admin_key, "whoami", org="Org B")
    assert admin_run["result"]["org_id"] == world.org_b and admin_run["result"]["is_platform_admin"] is True
    global_run = execute(world, world.admin_key, "whoami")
    assert global_run["result"]["scope"] == "GLOBAL" and global_run["result"]["is_global_scope"] is True


def test_users_cannot_run_in_another_organization(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        response = client.post("/api/workflows/whoami/execute", json={"params": {}, "org": world.org_b})
        assert response.status_code == 403
        assert client.post("/api/workflows/whoami/execute", json={"org": "No Such Org"}).status_code == 403
        own = client.post("/api/workflows/whoami/execute?wait=true", json={"org": "org a"})
        assert own.status_code == 200 and own.json()["result"]["org_id"] == world.org_a


def test_sdk_inside_a_workflow_uses_the_execution_identity(world: World) -> None:
    mine = execute(world, world.bob_key, "list_my_executions")
    assert mine["status"] == "Completed", mine
    assert mine["execution_id"] in mine["result"]
    with world.server.client(world.bob_key) as client:
        for eid in mine["result"]:
            assert client.get(f"/api/executions/{eid}").json()["executed_by"] == world.bob_id


def test_admin_only_modules_refuse_non_admins_with_a_clear_error(world: World) -> None:
    refused = execute(world, world.alice_key, "list_orgs")
    assert refused["status"] == "Failed"
    assert "Only platform admins may list organizations" in refused["error_message"]  # the user sees why
    with world.server.client(world.admin_key) as admin:
        detail = admin.get(f"/api/executions/{refused['execution_id']}").json()
    assert "PermissionDeniedError" in detail["error_message"]
    assert "Only platform admins may list organizations" in detail["error_message"]
    allowed = execute(world, world.admin_key, "list_orgs")
    assert allowed["status"] == "Completed" and {"Org A", "Org B"} <= set(allowed["result"])
    with world.server.client(world.alice_key) as client:
        response = client.get("/api/organizations")
        assert response.status_code == 403 and "platform admins" in response.json()["detail"]
        assert client.get("/api/users").status_code == 403


def test_execution_token_expires_with_the_execution(world: World) -> None:
    run = execute(world, world.alice_key, "leak_token")
    token = run["result"]
    assert token.startswith("bfx_")
    with world.server.client(token) as client:
        response = client.get("/api/sdk/v1/executions")
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    with world.server.client("bfx_not-a-live-token") as client:
        assert client.get("/api/sdk/v1/executions").status_code == 401


def test_list_filters(world: World) -> None:
    execute(world, world.bob_key, "add", {"a": 1})
    execute(world, world.bob_key, "user_fails")
    with world.server.client(world.bob_key) as client:
        failed = client.get("/api/executions", params={"status": "FAILED"}).json()
        assert failed and all(e["status"] == "Failed" for e in failed)
        by_name = client.get("/api/executions", params={"workflow_name": "add"}).json()
        assert by_name and all(e["workflow_name"] == "add" for e in by_name)
        assert len(client.get("/api/executions", params={"limit": 1}).json()) == 1
        future = client.get("/api/executions", params={"start_date": "2999-01-01"}).json()
        assert future == []
        today = client.get("/api/executions", params={"end_date": "2999-01-01", "start_date": "2000-01-01"}).json()
        assert len(today) >= 2
        bad = client.get("/api/executions", params={"status": "Exploded"})
        assert bad.status_code == 422 and "status" in bad.text
        bad_date = client.get("/api/executions", params={"start_date": "yesterday"})
        assert bad_date.status_code == 422


def test_org_isolation_of_executions(world: World) -> None:
    alice_run = execute(world, world.alice_key, "add", {"a": 1})
    with world.server.client(world.bob_key) as bob:
        assert bob.get(f"/api/executions/{alice_run['execution_id']}").status_code == 404
        assert bob.get(f"/api/executions/{alice_run['execution_id']}/logs").status_code == 404
        assert bob.get(f"/api/executions/{alice_run['execution_id']}/stream").status_code == 404
        ids = {e["execution_id"] for e in bob.get("/api/executions", params={"limit": 1000}).json()}
        assert alice_run["execution_id"] not in ids
        assert bob.get(f"/api/sdk/v1/executions/{alice_run['execution_id']}").status_code == 404


def test_openapi_schema_is_served(world: World) -> None:
    with world.server.client() as client:
        schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/workflows/{name}/execute" in paths and "/api/executions" in paths


def test_a_refused_submit_does_not_spoil_the_next_one(world: World) -> None:
    # A permission error rolls back the request's transaction; cached lookups must survive it.
    with world.server.client(world.alice_key) as client:
        for _ in range(3):
            refused = client.post("/api/workflows/add/execute", json={"params": {"a": 1}, "org": world.org_b})
            assert refused.status_code == 403
            ok = client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}})
            assert ok.status_code == 200 and ok.json()["result"] == {"sum": 3}


def test_cancel_right_after_submit(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        for _ in range(5):
            eid = client.post("/api/workflows/sleeper/execute", json={"params": {"seconds": 60}}).json()["execution_id"]
            cancelled = client.post(f"/api/executions/{eid}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "Cancelled"
            assert client.get(f"/api/executions/{eid}").json()["status"] == "Cancelled"


def test_recent_runs_per_workflow_match_the_list_and_its_visibility(world: World) -> None:
    """The catalogue's last runs: one query for every workflow, the same rows as one ``list`` per workflow."""
    from app.db import transaction
    from app.services.executions.service import ExecutionService
    from app.services.identity.auth import AuthService

    for a in range(4):
        execute(world, world.alice_key, "add", {"a": a})
    execute(world, world.alice_key, "noop")
    execute(world, world.bob_key, "add", {"a": 100})

    async def compare(user_id: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(user_id)
            service = ExecutionService(session)
            names = ["add", "noop", "never_ran"]
            recent = await service.recent_by_workflow(actor, names, 3)
            listed = {name: [e.id for e in await service.list(actor, name, limit=3)] for name in names}
            return {name: [e.id for e in runs] for name, runs in recent.items()}, listed

    for user in (world.alice_id, world.bob_id, world.admin_id):
        recent, listed = world.server.call(lambda user=user: compare(user))
        assert recent == listed
    alice_recent, _ = world.server.call(lambda: compare(world.alice_id))
    assert len(alice_recent["add"]) == 3 and len(alice_recent["noop"]) >= 1 and alice_recent["never_ran"] == []
    bob_recent, _ = world.server.call(lambda: compare(world.bob_id))
    assert len(bob_recent["add"]) >= 1 and not set(bob_recent["add"]) & set(alice_recent["add"])
