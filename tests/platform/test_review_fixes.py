"""Privilege, visibility and robustness rules found by review; each was once broken."""

from __future__ import annotations

import time

from tests.platform.conftest import World


async def _limited_admin_key(world: World, organization_id: str) -> str:
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService

    async with transaction(world.server.platform.sessions) as session:
        admin = await AuthService(session).actor_for_user(world.admin_id)
        _, key = await ApiKeyService(session).create(admin, "org-limited admin key", organization_id)
    return key


def test_keys_and_tokens_cannot_mint_keys_or_leave_the_sdk_api(world: World) -> None:
    limited = world.server.call(lambda: _limited_admin_key(world, world.org_a))
    with world.server.client(limited) as client:
        refused = client.post("/api/api-keys", json={"name": "escalate"})
        assert refused.status_code == 403 and "logged-in user" in refused.json()["detail"]
    with world.server.client(world.admin_key) as admin:
        assert admin.post("/api/api-keys", json={"name": "from a key"}).status_code == 403
    token = (
        world.server.client(world.alice_key)
        .post("/api/workflows/leak_token/execute?wait=true", json={})
        .json()["result"]
    )
    with world.server.client(token) as client:
        assert client.get("/api/workflows").status_code == 401


def test_runs_keep_the_limits_of_the_key_that_started_them(world: World) -> None:
    limited = world.server.call(lambda: _limited_admin_key(world, world.org_a))
    with world.server.client(limited) as client:
        run = client.post("/api/workflows/list_users_sdk/execute?wait=true", json={}).json()
    assert run["status"] == "Failed"
    assert "PermissionDeniedError" in run["error_message"]  # an org-limited key's run is no platform admin


def test_flags_must_be_real_booleans_and_text_must_be_text(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        bad_flag = admin.patch(f"/api/users/{world.alice_id}", json={"is_superuser": "false"})
        assert bad_flag.status_code == 422 and bad_flag.json()["extra"]["errors"][0]["field"] == "is_superuser"
        assert admin.get(f"/api/users/{world.alice_id}").json()["is_superuser"] is False
        bad_domain = admin.patch(f"/api/organizations/{world.org_b}", json={"domain": {"a": 1}})
        assert bad_domain.status_code == 422
        bad_org = admin.patch(f"/api/users/{world.bob_id}", json={"org_id": {"x": 1}})
        assert bad_org.status_code == 422


def test_workflow_exceptions_never_reach_users_by_their_class_name(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        run = client.post(
            "/api/workflows/leaky_validation/execute?wait=true", json={"params": {"value": "s3cr3t-input"}}
        ).json()
    assert run["status"] == "Failed"
    assert "s3cr3t-input" not in run["error_message"] and run["traceback"] is None
    with world.server.client(world.admin_key) as admin:
        detail = admin.get(f"/api/executions/{run['execution_id']}").json()
    assert "s3cr3t-input" in detail["error_message"]


def test_odd_log_text_keeps_the_result_and_the_logs(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        run = client.post("/api/workflows/odd_text/execute?wait=true", json={}).json()
        assert run["status"] == "Completed" and run["result"] == "done"
        logs = [line["message"] for line in client.get(f"/api/executions/{run['execution_id']}/logs").json()]
    assert logs[0].startswith("menu: caf") and logs[1] == "after the odd line"
    # the flusher is not poisoned: a later slow run still has its lines stored while it runs
    with world.server.client(world.alice_key) as client:
        again = client.post("/api/workflows/slow_logger/execute?wait=true", json={"params": {"steps": 2, "delay": 0.1}})
        eid = again.json()["execution_id"]
        assert [line["message"] for line in client.get(f"/api/executions/{eid}/logs").json()] == ["step 0", "step 1"]


def test_nested_workflow_runs_or_is_refused_clearly_when_no_worker_is_free(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        ok = admin.post("/api/workflows/nested_add/execute?wait=true", json={"params": {"a": 5}}).json()
        assert ok["status"] == "Completed" and ok["result"] == {"status": "Completed", "result": {"sum": 7}}
        # occupy the other worker, then nest: waiting would deadlock, so the call is refused
        blocker = admin.post("/api/workflows/sleeper/execute", json={"params": {"seconds": 60}}).json()
        for _ in range(100):
            if admin.get(f"/api/executions/{blocker['execution_id']}").json()["status"] == "Running":
                break
            time.sleep(0.05)
        refused = admin.post("/api/workflows/nested_add/execute?wait=true", json={"params": {"a": 1}}).json()
        admin.post(f"/api/executions/{blocker['execution_id']}/cancel")
    assert refused["status"] == "Failed"
    assert "No free worker" in refused["error_message"]
