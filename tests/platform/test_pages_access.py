"""The access form on the workflow page and the approvals page, over HTTP with a session (issue 16).

Forms post with their CSRF token (a post without it is refused and changes nothing); bad input is shown
with the field and the reason and nothing is written; technicians get 403 for both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.platform.access_support import grant_role, start_access_world
from tests.platform.conftest import World
from tests.platform.pages_support import admin, alice, text, wait_done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_access_world(tmp_path_factory.mktemp("pages-access"))
    try:
        yield w
    finally:
        w.server.stop()


def policy(world: World, name: str) -> dict:  # type: ignore[type-arg]
    with world.server.client(world.admin_key) as client:
        return client.get(f"/api/workflows/{name}/access").json()  # type: ignore[no-any-return]


def test_admin_sets_a_role_policy_on_the_workflow_page(world: World) -> None:
    with alice(world) as tech:
        assert tech.get("/workflows/pg_reset_mailbox").status_code == 404
    with admin(world) as page:
        shown = page.get("/workflows/pg_reset_mailbox")
        assert shown.status_code == 200 and 'id="access-form"' in shown.text
        assert re.search(r'value="admins" id="access-admins" checked', shown.text)
        # without the CSRF token: refused, nothing written
        refused = page.post("/workflows/pg_reset_mailbox/access", {"access": "roles", "roles": "Mail"}, csrf=False)
        assert refused.status_code == 403
        assert policy(world, "pg_reset_mailbox")["access"] == "admins"
        # roles without a role name: the reason, the input kept, nothing written
        bad = page.post("/workflows/pg_reset_mailbox/access", {"access": "roles", "roles": " , "})
        assert bad.status_code == 422
        assert "roles: name at least one role when access is 'roles'" in text(bad.text)
        assert re.search(r'value="roles" id="access-roles" checked', bad.text)
        bad = page.post("/workflows/pg_reset_mailbox/access", {"access": "nobody"})
        assert bad.status_code == 422 and "access: must be one of everyone, roles, admins" in text(bad.text)
        assert policy(world, "pg_reset_mailbox")["overridden"] == []
        saved = page.post(
            "/workflows/pg_reset_mailbox/access",
            {"access": "roles", "roles": "Mail, Tier 2", "organizations": world.org_a},
        )
        assert saved.status_code == 303 and saved.headers["location"] == "/workflows/pg_reset_mailbox#access"
        assert "Access of pg_reset_mailbox saved." in page.get("/workflows/pg_reset_mailbox").text
    now = policy(world, "pg_reset_mailbox")
    assert (now["access"], now["roles"], now["organizations"]) == ("roles", ["Mail", "Tier 2"], [world.org_a])
    # only what the admin changed is overridden: the approval settings still follow the code
    assert sorted(now["overridden"]) == ["access", "organizations", "roles"]
    grant_role(world, world.org_a, world.alice_id, "Mail")
    with alice(world) as tech:
        assert tech.get("/workflows/pg_reset_mailbox").status_code == 200
        assert tech.get("/workflows/pg_reset_mailbox/access").status_code == 403
        assert tech.post("/workflows/pg_reset_mailbox/access", {"access": "everyone"}).status_code == 403
    with admin(world) as page:
        assert page.post("/workflows/pg_reset_mailbox/access/reset").status_code == 303
    assert policy(world, "pg_reset_mailbox")["access"] == "admins"


def test_approvals_page_lists_decides_and_explains_refusals(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        waiting = client.post("/api/workflows/pg_delete_user/execute", json={"params": {"user": "bob"}}).json()
    run_id = waiting["execution_id"]
    with alice(world) as tech:
        assert tech.get("/approvals").status_code == 403  # not an approver
        assert 'id="nav-approvals"' not in tech.get("/").text
        listed = tech.get("/executions")
        assert f'<a class="badge-approval" href="/approvals/{run_id}">Awaiting approval</a>' in listed.text
        own = tech.get(f"/approvals/{run_id}")  # the requester sees their approval, without a decision form
        assert own.status_code == 200 and "another approver must decide it" in text(own.text)
        assert f'id="decide-{run_id}"' not in own.text
        refused = tech.post(f"/approvals/{run_id}/approve", {"reason": ""})
        assert refused.status_code == 403 and "another approver must decide it" in text(refused.text)
    with admin(world) as page:
        assert 'id="nav-approvals"' in page.get("/").text
        listed = page.get("/approvals")
        row = re.search(rf'<tr id="approval-{run_id}">.*?</tr>', listed.text, re.S)
        assert row, listed.text[:3000]
        assert "alice@a.example" in row.group(0) and "bob" in text(row.group(0))
        assert page.post(f"/approvals/{run_id}/reject", {"reason": ""}, csrf=False).status_code == 403
        missing = page.post(f"/approvals/{run_id}/reject", {"reason": "  "})
        assert missing.status_code == 422 and "reason: is required when rejecting" in text(missing.text)
        done = page.post(f"/approvals/{run_id}/reject", {"reason": "wrong user", "back": "list"})
        assert done.status_code == 303 and done.headers["location"] == "/approvals"
        again = page.post(f"/approvals/{run_id}/approve", {"reason": ""})
        assert again.status_code == 409 and "the approval is rejected" in text(again.text)
        execution = page.get(f"/executions/{run_id}")
        assert "Rejected by admin@test.io: wrong user" in text(execution.text)
        assert page.get("/approvals", params={"status": "bogus"}).status_code == 422
    body = wait_done(world, world.alice_key, run_id)
    assert body["status"] == "Cancelled" and body["started_at"] is None
