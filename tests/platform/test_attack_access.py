"""Attacks on per-workflow access and approvals, over HTTP against a live server (issue 16).

Each test names its attacker and counts its attempts; every attempt must be refused (404 for what
the caller may not run, 403 for a decision they may not take) and nothing may run. The module runs on a
SQLite file, then on Postgres when ``BIFROST_TEST_POSTGRES_URL`` is set (policy overrides and approval
rows are written with row locks there).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import (
    PLATFORM_WORKSPACE,
    POSTGRES_URL,
    LiveServer,
    create_postgres_database,
    drop_postgres_database,
    make_settings,
)
from tests.platform.conftest import World, browser_session, seed

CASES = '''
from typing import Annotated

from pydantic import Field

from bifrost import data_provider, workflow, workflows


@data_provider(cache_ttl_seconds=0)
async def ac_secret_choices() -> list[dict]:
    return [{"label": "vault", "value": "vault"}]


@workflow(access="admins", endpoint_enabled=True, is_tool=True)
async def ac_admin_only(
    target: Annotated[str, Field(json_schema_extra={"data_provider": "ac_secret_choices"})] = "vault",
) -> str:
    """Admins only."""
    return "ran " + target


@workflow(access=["Escalation"])
async def ac_escalation_only() -> str:
    return "escalated"


@workflow(needs_approval=True, is_tool=True)
async def ac_needs_ok(note: str = "") -> str:
    return "approved run " + note


@workflow
async def ac_call_admin_only() -> str:
    try:
        run = await workflows.execute("ac_admin_only", {})
    except Exception as exc:
        return f"refused: {type(exc).__name__}: {exc}"
    return f"ran: {run.status}"


@workflow
async def ac_call_needs_ok() -> dict:
    run = await workflows.execute("ac_needs_ok", {"note": "nested"}, wait=True)
    return {"id": run.execution_id, "status": str(run.status)}
'''


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server with the cases above, per database (Postgres skipped without its URL)."""
    url = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    tmp = tmp_path_factory.mktemp(f"access-{request.param}")
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "access_cases.py").write_text(CASES)
    server = LiveServer(make_settings(tmp, url, workspace=workspace)).start()
    try:
        data = server.call(lambda: seed(server.platform))
        yield World(server=server, **data)
    finally:
        server.stop()
        if url:
            drop_postgres_database(url)


def _runs(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    return client.get("/api/executions", params={"workflow_name": name}).json()  # type: ignore[no-any-return]


def _wait(client: httpx.Client, execution_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body = client.get(f"/api/executions/{execution_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_a_technician_sees_and_runs_nothing_of_an_admin_only_workflow(world: World) -> None:
    """Attacker: Alice, a technician of Org A, against ``ac_admin_only`` by every path."""
    admin = world.server.client(world.admin_key)
    alice = world.server.client(world.alice_key)
    form = admin.post(
        "/api/forms",
        json={
            "name": "Vault",
            "workflow_id": "ac_admin_only",
            "access_level": "authenticated",
            "organization_id": None,
        },
    )
    assert form.status_code == 201, form.text
    form_id = form.json()["id"]
    attempts = 0

    def refused(response: httpx.Response, what: str) -> None:
        nonlocal attempts
        attempts += 1
        assert response.status_code == 404, f"{what}: {response.status_code} {response.text[:200]}"

    # the admin sees it everywhere (so the refusals below are the policy, not a missing workflow)
    assert "ac_admin_only" in [w["name"] for w in admin.get("/api/workflows").json()]
    assert "/api/endpoints/ac_admin_only" in admin.get("/schema/openapi.json").json()["paths"]
    # catalogue, get, execute (API and SDK), endpoint
    attempts += 1
    assert "ac_admin_only" not in [w["name"] for w in alice.get("/api/workflows").json()]
    refused(alice.get("/api/workflows/ac_admin_only"), "get")
    refused(alice.get("/api/workflows/ac_admin_only/access"), "policy")
    refused(alice.post("/api/workflows/ac_admin_only/execute", json={"params": {}}), "execute")
    refused(alice.post("/api/workflows/ac_admin_only/execute?wait=true", json={"params": {}}), "execute wait")
    refused(alice.post("/api/endpoints/ac_admin_only", json={}), "endpoint")
    # forms: not listed, not readable
    attempts += 1
    assert form_id not in [f["id"] for f in alice.get("/api/forms").json()]
    refused(alice.get(f"/api/forms/{form_id}"), "form")
    # chat tools
    attempts += 1
    assert "ac_admin_only" not in [t["name"] for t in alice.get("/api/chat/tools").json()]
    # OpenAPI: the endpoint path and its schemas are not in Alice's document
    attempts += 1
    document = alice.get("/schema/openapi.json").json()
    assert "/api/endpoints/ac_admin_only" not in document["paths"]
    assert not [name for name in document["components"]["schemas"] if name.startswith("Endpoint_ac_admin_only_")]
    # data provider used only by the admin-only workflow: not listed
    attempts += 1
    assert "ac_secret_choices" not in [p["name"] for p in alice.get("/api/data-providers").json()]
    # pages (session): catalogue, form page, provider field, form submit
    with browser_session(world, "alice@a.example", "alice-password") as page:
        attempts += 1
        assert "ac_admin_only" not in page.get("/workflows/").text
        assert "ac_admin_only" not in page.get("/").text
        refused(page.get("/workflows/ac_admin_only"), "form page")
        refused(page.get("/workflows/ac_admin_only/fields", params={"field": "target"}), "provider field")
        refused(page.get(f"/forms/{form_id}"), "custom form page")
    # nested: a workflow Alice may run calls the admin-only one through workflows.execute
    nested = alice.post("/api/workflows/ac_call_admin_only/execute?wait=true", json={"params": {}}).json()
    attempts += 1
    assert nested["status"] == "Completed" and nested["result"].startswith("refused: NotFoundError"), nested
    # nothing of it ran for Alice; the admin can run it
    assert _runs(admin, "ac_admin_only") == []
    ran = admin.post("/api/workflows/ac_admin_only/execute?wait=true", json={"params": {}}).json()
    assert ran["status"] == "Completed" and ran["result"] == "ran vault"
    print(f"{attempts} attempts on an admin-only workflow refused")
    admin.close()
    alice.close()


def test_roles_policy_and_admin_overrides_survive_a_resync(world: World) -> None:
    """Attacker: Bob (Org B) against a workflow limited to a role and to Org A; overrides outlive a sync."""
    admin = world.server.client(world.admin_key)
    alice = world.server.client(world.alice_key)
    bob = world.server.client(world.bob_key)
    refusals = 0
    for client in (alice, bob):  # nobody holds the role yet
        refusals += 1
        assert client.post("/api/workflows/ac_escalation_only/execute", json={}).status_code == 404

    async def grant() -> None:
        from app.db import transaction
        from app.models import Role, UserRole

        async with transaction(world.server.platform.sessions) as session:
            for org, user in ((world.org_a, world.alice_id), (world.org_b, world.bob_id)):
                role = Role(name="Escalation", organization_id=org)
                session.add(role)
                await session.flush()
                session.add(UserRole(role_id=role.id, user_id=user))

    world.server.call(grant)
    time.sleep(5.1)  # role names are cached for 5 s
    assert alice.post("/api/workflows/ac_escalation_only/execute?wait=true", json={}).json()["result"] == "escalated"
    # an admin limits it to Org A
    changed = admin.put("/api/workflows/ac_escalation_only/access", json={"organizations": [world.org_a]})
    assert changed.status_code == 200 and changed.json()["organizations"] == [world.org_a]
    refusals += 1
    assert bob.post("/api/workflows/ac_escalation_only/execute", json={}).status_code == 404
    # Bob cannot change a policy; bad input names the field
    refusals += 1
    assert bob.put("/api/workflows/ac_escalation_only/access", json={"access": "everyone"}).status_code == 403
    bad = admin.put("/api/workflows/ac_escalation_only/access", json={"access": "nobody"})
    assert bad.status_code == 422 and bad.json()["extra"]["errors"][0]["field"] == "access"
    bad = admin.put("/api/workflows/ac_escalation_only/access", json={"organisations": []})
    assert bad.status_code == 422
    # a workspace re-sync keeps the admin's override
    assert admin.post("/api/workspace/sync").status_code == 200
    assert admin.get("/api/workflows/ac_escalation_only/access").json()["organizations"] == [world.org_a]
    refusals += 1
    assert bob.post("/api/workflows/ac_escalation_only/execute", json={}).status_code == 404
    # back to the declared policy
    reset = admin.put("/api/workflows/ac_escalation_only/access", json={"organizations": None})
    assert reset.json()["organizations"] is None and reset.json()["declared"]["roles"] == ["Escalation"]
    print(f"{refusals} role/organization attempts refused")
    for client in (admin, alice, bob):
        client.close()


def test_a_nested_call_to_an_approval_workflow_waits_for_an_approver(world: World) -> None:
    """Attackers: Alice approving her own run, Bob deciding Org A's run; nothing runs before approval."""
    admin = world.server.client(world.admin_key)
    alice = world.server.client(world.alice_key)
    bob = world.server.client(world.bob_key)
    outer = alice.post("/api/workflows/ac_call_needs_ok/execute?wait=true", json={"params": {}}).json()
    assert outer["status"] == "Completed", outer
    assert outer["result"]["status"] == "AwaitingApproval"
    inner_id = outer["result"]["id"]
    inner = alice.get(f"/api/executions/{inner_id}").json()
    assert inner["status"] == "AwaitingApproval" and inner["started_at"] is None and inner["result"] is None
    # the approval lists parameters and requester
    waiting = admin.get("/api/approvals").json()
    [approval] = [a for a in waiting if a["execution_id"] == inner_id]
    assert approval["parameters"] == {"note": "nested"} and approval["requested_by_name"] == "alice@a.example"
    assert approval["can_decide"] is True
    attempts = 0
    attempts += 1
    own = alice.post(f"/api/approvals/{inner_id}/approve", json={})
    assert own.status_code == 403 and "another approver" in own.json()["detail"]
    attempts += 1
    assert bob.post(f"/api/approvals/{inner_id}/approve", json={}).status_code == 404
    attempts += 1
    assert bob.get(f"/api/approvals/{inner_id}").status_code == 404
    time.sleep(0.5)
    assert alice.get(f"/api/executions/{inner_id}").json()["status"] == "AwaitingApproval"  # still nothing ran
    # the admin approves: it runs once
    decided = admin.post(f"/api/approvals/{inner_id}/approve", json={"reason": "checked"})
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    done = _wait(alice, inner_id, ("Completed", "Failed"))
    assert done["status"] == "Completed" and done["result"] == "approved run nested"
    attempts += 1
    again = admin.post(f"/api/approvals/{inner_id}/approve", json={})
    assert again.status_code == 409
    print(f"{attempts} decision attempts refused")
    for client in (admin, alice, bob):
        client.close()


def test_rejection_cancels_with_the_reason_and_self_approval_is_a_setting(world: World) -> None:
    admin = world.server.client(world.admin_key)
    alice = world.server.client(world.alice_key)
    run = alice.post("/api/workflows/ac_needs_ok/execute?wait=true", json={"params": {"note": "x"}})
    assert run.status_code == 202 and run.json()["status"] == "AwaitingApproval"
    run_id = run.json()["execution_id"]
    missing = admin.post(f"/api/approvals/{run_id}/reject", json={})
    assert missing.status_code == 422 and missing.json()["extra"]["errors"][0]["field"] == "reason"
    rejected = admin.post(f"/api/approvals/{run_id}/reject", json={"reason": "wrong ticket"})
    assert rejected.status_code == 200 and rejected.json()["reason"] == "wrong ticket"
    body = alice.get(f"/api/executions/{run_id}").json()
    assert body["status"] == "Cancelled" and "wrong ticket" in body["error_message"] and body["started_at"] is None
    # the admin allows self-approval for this workflow and names Alice's role as approvers
    assert (
        admin.put(
            "/api/workflows/ac_needs_ok/access", json={"allow_self_approval": True, "approver_role": "Escalation"}
        ).status_code
        == 200
    )

    async def grant() -> None:
        from app.db import transaction
        from app.models import Role, UserRole
        from app.services.workflows.access import forget_roles

        async with transaction(world.server.platform.sessions) as session:
            role = Role(name="Approvers", organization_id=world.org_a)
            session.add(role)
            await session.flush()
            session.add(UserRole(role_id=role.id, user_id=world.alice_id))
        forget_roles()

    world.server.call(grant)
    admin.put("/api/workflows/ac_needs_ok/access", json={"approver_role": "Approvers"})
    run_id = alice.post("/api/workflows/ac_needs_ok/execute", json={"params": {}}).json()["execution_id"]
    try:
        own = alice.post(f"/api/approvals/{run_id}/approve", json={})
        assert own.status_code == 200, own.text
        assert _wait(alice, run_id, ("Completed", "Failed"))["status"] == "Completed"
    finally:
        admin.put("/api/workflows/ac_needs_ok/access", json={"allow_self_approval": False, "approver_role": None})
    admin.close()
    alice.close()


def test_expired_approvals_end_cancelled(world: World) -> None:
    admin = world.server.client(world.admin_key)
    run_id = admin.post("/api/workflows/ac_needs_ok/execute", json={"params": {}}).json()["execution_id"]

    async def backdate_and_sweep() -> list[str]:
        from sqlalchemy import update

        from app.db import transaction
        from app.models.access import ExecutionApproval
        from app.models.base import utcnow

        async with transaction(world.server.platform.sessions) as session:
            await session.execute(
                update(ExecutionApproval)
                .where(ExecutionApproval.execution_id == run_id)  # type: ignore[arg-type]
                .values(expires_at=utcnow())
            )
        return await world.server.platform.dispatcher.expire_approvals()

    assert run_id in world.server.call(backdate_and_sweep)
    body = admin.get(f"/api/executions/{run_id}").json()
    assert body["status"] == "Cancelled" and body["error_message"] == "approval expired"
    assert admin.get(f"/api/approvals/{run_id}").json()["status"] == "expired"
    assert admin.post(f"/api/approvals/{run_id}/approve", json={}).status_code == 409
    admin.close()


def _audit_events(admin: httpx.Client, action: str, target: str) -> list[dict[str, Any]]:
    events = admin.get("/api/audit", params={"action": action, "limit": 500}).json()["events"]
    return [e for e in events if e["target_id"] == target]


def test_a_policy_change_and_each_decision_write_one_audit_event(world: World) -> None:
    admin = world.server.client(world.admin_key)
    alice = world.server.client(world.alice_key)
    before = len(_audit_events(admin, "workflow.access_policy_changed", "ac_escalation_only"))
    changed = admin.put("/api/workflows/ac_escalation_only/access", json={"approver_role": "Escalation"})
    assert changed.status_code == 200, changed.text
    refused = admin.put("/api/workflows/ac_escalation_only/access", json={"access": "nobody"})
    assert refused.status_code == 422  # nothing written, nothing recorded
    events = _audit_events(admin, "workflow.access_policy_changed", "ac_escalation_only")
    assert len(events) == before + 1
    assert events[0]["actor_email"] == "admin@test.io" and events[0]["target_type"] == "workflow"
    assert events[0]["details"]["changed"] == {"approver_role": "Escalation"}
    admin.put("/api/workflows/ac_escalation_only/access", json={"approver_role": None})
    # one approval, one rejection: one event each, with the decision and the reason
    approved_id = alice.post("/api/workflows/ac_needs_ok/execute", json={"params": {}}).json()["execution_id"]
    rejected_id = alice.post("/api/workflows/ac_needs_ok/execute", json={"params": {}}).json()["execution_id"]
    assert alice.post(f"/api/approvals/{approved_id}/approve", json={}).status_code == 403  # refused: no event
    assert admin.post(f"/api/approvals/{approved_id}/approve", json={"reason": "ok"}).status_code == 200
    assert admin.post(f"/api/approvals/{rejected_id}/reject", json={"reason": "no ticket"}).status_code == 200
    [approved] = _audit_events(admin, "execution.approval_decided", approved_id)
    [rejected] = _audit_events(admin, "execution.approval_decided", rejected_id)
    assert approved["details"]["decision"] == "approved" and approved["organization_id"] == world.org_a
    assert rejected["details"] == {
        "workflow": "ac_needs_ok",
        "decision": "rejected",
        "reason": "no ticket",
        "requested_by": "alice@a.example",
    }
    _wait(alice, approved_id, ("Completed", "Failed"))
    admin.close()
    alice.close()
