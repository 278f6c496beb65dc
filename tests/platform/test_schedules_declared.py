"""Schedules declared in code run with platform powers in the global scope; organization schedules as a member.

Fired through the real scheduler path and through the page's "Run now" button (a CSRF-protected form
post); the page shows each firing's execution status with a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.conftest import World, browser_session
from tests.platform.schedule_support import create, runs, schedules, start_server, wait_for

WRITER = '''
from bifrost import context, tables, workflow


@workflow(schedule="0 0 1 1 *")
async def nightly_inventory(label: str = "declared") -> dict:
    """Declared schedule that writes a table (it needs write access in its scope)."""
    doc = await tables.insert("inventory_runs", {"label": label})
    return {
        "doc_id": doc.id,
        "email": context.email,
        "org_id": context.org_id,
        "is_platform_admin": context.is_platform_admin,
        "is_global_scope": context.is_global_scope,
    }
'''


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = start_server(tmp_path_factory.mktemp("declared"), files={"writer_flows.py": WRITER})
    try:
        yield world
    finally:
        world.server.stop()


def schedule_of(world: World, workflow: str) -> dict[str, Any]:
    """The schedule the code declares (admins may add others of the same workflow)."""
    found = [s for s in schedules(world) if s["workflow_name"] == workflow and s["source"] == "workspace"]
    assert len(found) == 1, found
    return found[0]


def table_labels(world: World, key: str) -> list[str]:
    with world.server.client(key) as client:
        response = client.post("/api/tables/inventory_runs/query", json={})
        assert response.status_code == 200, response.text
    return sorted(d["data"]["label"] for d in response.json()["documents"])


def csrf(page: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def execution(world: World, execution_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        with world.server.client(world.admin_key) as admin:
            found = admin.get(f"/api/executions/{execution_id}").json()
        return found if found["status"] not in ("Pending", "Running") else None

    return wait_for(ended, f"execution {execution_id} to end")  # type: ignore[no-any-return]


def test_a_declared_schedule_fires_with_platform_powers_and_writes_its_table(sw: World) -> None:
    declared = schedule_of(sw, "nightly_inventory")
    assert declared["scope"] == "GLOBAL" and declared["runs_as"].startswith("Platform scheduler")
    # The timed path: what APScheduler calls at each slot.
    run = sw.server.call(lambda: sw.server.platform.scheduler.fire(declared["id"]))
    assert run is not None and run.outcome == "submitted"
    done = execution(sw, run.execution_id)
    assert done["status"] == "Completed", done
    assert done["trigger"] == "schedule" and done["org_id"] is None
    assert done["result"]["is_platform_admin"] is True and done["result"]["is_global_scope"] is True
    assert done["result"]["email"] == "platform-scheduler@bifrost.invalid"
    assert "declared" in table_labels(sw, sw.admin_key)
    # The API and the page say how the firing went, not just "submitted".
    after = schedule_of(sw, "nightly_inventory")
    assert after["last_execution_status"] == "Completed" and after["status"] == "completed"


def test_run_now_fires_as_the_schedule_and_the_page_links_each_firing(sw: World) -> None:
    declared = schedule_of(sw, "nightly_inventory")
    before = {r["id"] for r in runs(sw, declared["id"])}
    with browser_session(sw) as admin:
        page = admin.get("/schedules").text
        row = page[page.index(f'id="schedule-{declared["id"]}"') :]
        assert f'action="/schedules/{declared["id"]}/run"' in row[: row.index("</tr>")]
        token = csrf(page)
        del admin.headers["X-CSRFToken"]  # a page form carries the token in its body only
        forged = admin.post(f"/schedules/{declared['id']}/run", data={"_csrf_token": "forged"})
        assert forged.status_code == 403
        assert {r["id"] for r in runs(sw, declared["id"])} == before
        fired = admin.post(f"/schedules/{declared['id']}/run", data={"_csrf_token": token}, follow_redirects=False)
        assert fired.status_code == 303 and fired.headers["location"] == "/schedules"
        new = [r for r in runs(sw, declared["id"]) if r["id"] not in before]
        assert len(new) == 1 and new[0]["outcome"] == "submitted" and new[0]["detail"] == "run now by admin@test.io"
        done = execution(sw, new[0]["execution_id"])
        assert done["status"] == "Completed" and done["result"]["is_platform_admin"] is True
        page = admin.get("/schedules").text
    row = page[page.index(f'id="schedule-{declared["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert f'<a href="/executions/{done["execution_id"]}">Completed</a>' in row
    assert "Runs as: Platform scheduler, with platform powers" in row and "status-completed" in row
    # The next timed firing did not move, and the press is in the audit log once.
    assert schedule_of(sw, "nightly_inventory")["next_run_at"] == declared["next_run_at"]
    with sw.server.client(sw.admin_key) as admin_api:
        events = admin_api.get("/api/audit", params={"action": "schedule.run_now"}).json()["events"]
    assert [e["details"]["run_id"] for e in events] == [new[0]["id"]]


def test_an_organization_schedule_runs_as_a_member_of_it(sw: World) -> None:
    added = create(sw, workflow="nightly_inventory", cron="0 0 1 1 *", organization_id=sw.org_a, params={"label": "a"})
    assert added["runs_as"].startswith("Scheduler, a member")
    run = sw.server.call(lambda: sw.server.platform.scheduler.fire(added["id"]))
    done = execution(sw, run.execution_id)
    assert done["status"] == "Completed", done
    assert done["org_id"] == sw.org_a and done["result"]["is_platform_admin"] is False
    assert done["result"]["email"] == "scheduler@bifrost.invalid"
    assert table_labels(sw, sw.alice_key) == ["a"]  # written in Org A's table, where its members read it


def test_run_now_is_for_platform_admins_only(sw: World) -> None:
    declared = schedule_of(sw, "nightly_inventory")
    before = len(runs(sw, declared["id"]))
    with browser_session(sw, "alice@a.example", "alice-password") as alice:
        token = csrf(alice.get("/").text)
        del alice.headers["X-CSRFToken"]
        refused = alice.post(f"/schedules/{declared['id']}/run", data={"_csrf_token": token})
    assert refused.status_code == 403
    assert len(runs(sw, declared["id"])) == before
    with browser_session(sw) as admin:
        token = csrf(admin.get("/schedules").text)
        del admin.headers["X-CSRFToken"]
        unknown = admin.post("/schedules/no-such-schedule/run", data={"_csrf_token": token})
    assert unknown.status_code == 404 and "Schedule &#39;no-such-schedule&#39; not found" in unknown.text
