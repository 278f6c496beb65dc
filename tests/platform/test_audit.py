"""The audit log over HTTP: each audited action writes exactly one event, values never appear, filters,
CSV export, and who may read it."""

from __future__ import annotations

import csv
import io
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World, browser_session
from tests.platform.integrations_support import define, map_org
from tests.platform.pages_support import start_pages_world

SECRET_VALUE = "s3cr3t-value-that-must-never-be-logged"
NEW_PASSWORD = "a-brand-new-password-9"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded server whose login throttle allows the many sign-ins of this module."""
    w = start_pages_world(tmp_path_factory.mktemp("audit"))
    try:
        yield w
    finally:
        w.server.stop()


def newest(admin: httpx.Client) -> str | None:
    events = admin.get("/api/audit", params={"limit": 1}).json()["events"]
    return events[0]["id"] if events else None


def since(admin: httpx.Client, mark: str | None) -> list[dict[str, Any]]:
    """Events newer than the event ``mark``, oldest first."""
    found: list[dict[str, Any]] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 50, **({"before": before} if before else {})}
        page = admin.get("/api/audit", params=params).json()
        for event in page["events"]:
            if event["id"] == mark:
                return found[::-1]
            found.append(event)
        before = page["next_before"]
        if before is None:
            return found[::-1]


class Recorder:
    """Asserts that what happens inside ``expect(action)`` writes exactly one event, of that action."""

    def __init__(self, world: World) -> None:
        self.admin = world.server.client(world.admin_key)
        self.seen: list[dict[str, Any]] = []

    def expect(self, action: str) -> Any:
        recorder = self

        class _Block:
            event: dict[str, Any]

            def __enter__(self) -> _Block:
                self.mark = newest(recorder.admin)
                return self

            def __exit__(self, *exc: Any) -> None:
                if exc[0] is not None:
                    return
                new = since(recorder.admin, self.mark)
                assert [e["action"] for e in new] == [action], new
                self.event = new[0]
                recorder.seen.append(new[0])

        return _Block()


def test_each_audited_action_writes_one_event_without_values(world: World) -> None:
    rec = Recorder(world)
    url = world.server.url
    # ----- sign-ins: JSON API and the login page, success and failure, with the client address
    with rec.expect("auth.login_succeeded") as ev, browser_session(world) as admin_browser:
        pass
    assert ev.event["actor_email"] == "admin@test.io" and ev.event["ip"] == "127.0.0.1"
    with rec.expect("auth.login_failed") as ev, httpx.Client(base_url=url) as anon:
        bad = anon.post("/api/auth/login", json={"email": "Alice@A.example", "password": "wrong-password"})
        assert bad.status_code == 401
    assert ev.event["actor_email"] == "alice@a.example" and ev.event["target_id"] == world.alice_id
    assert ev.event["organization_id"] == world.org_a and ev.event["ip"] == "127.0.0.1"
    assert "wrong-password" not in str(ev.event)
    with rec.expect("auth.login_failed") as ev, httpx.Client(base_url=url) as anon:
        anon.get("/login")
        page = anon.post(
            "/login",
            data={"email": "nobody@x.example", "password": "pw", "_csrf_token": anon.cookies["csrftoken"]},
        )
        assert page.status_code == 200 and "Invalid email or password" in page.text
    assert ev.event["actor_email"] == "nobody@x.example" and ev.event["target_id"] is None
    with rec.expect("auth.login_succeeded") as ev, httpx.Client(base_url=url) as browser:
        browser.get("/login")
        page = browser.post(
            "/login",
            data={
                "email": "alice@a.example",
                "password": "alice-password",
                "_csrf_token": browser.cookies["csrftoken"],
            },
        )
        assert page.status_code == 303
    assert ev.event["actor_id"] == world.alice_id and ev.event["organization_id"] == world.org_a

    with browser_session(world) as admin_browser:  # (its own sign-in is not part of the blocks below)
        # ----- API keys
        with rec.expect("api_key.created") as ev:
            created = admin_browser.post("/api/api-keys", json={"name": "audited key"})
            assert created.status_code == 201
        key = created.json()
        assert ev.event["target_id"] == key["id"] and key["key"] not in str(ev.event)
        with rec.expect("api_key.revoked"):
            assert admin_browser.delete(f"/api/api-keys/{key['id']}").status_code == 200

    admin = rec.admin
    org_admin = world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_a})
    # ----- organizations, users, roles, assignments
    with rec.expect("organization.created") as ev:
        org = admin.post("/api/organizations", json={"name": "Audited Org"}).json()
    assert ev.event["organization_id"] == org["id"] and ev.event["actor_email"] == "admin@test.io"
    with rec.expect("organization.updated") as ev:
        assert admin.patch(f"/api/organizations/{org['id']}", json={"domain": "audited.example"}).status_code == 200
    assert ev.event["details"]["fields"] == ["domain"]
    with rec.expect("organization.deactivated"):
        assert admin.delete(f"/api/organizations/{org['id']}").status_code == 200
    with rec.expect("user.created") as ev:
        user = admin.post(
            "/api/users",
            json={"email": "dora@a.example", "name": "Dora", "org_id": world.org_a, "password": "dora-password-1"},
        ).json()
    assert ev.event["target_id"] == user["id"] and ev.event["organization_id"] == world.org_a
    with rec.expect("user.updated") as ev:
        assert admin.patch(f"/api/users/{user['id']}", json={"password": NEW_PASSWORD}).status_code == 200
    assert ev.event["details"]["fields"] == ["password"]
    with rec.expect("role.created") as ev:
        role = org_admin.post("/api/roles", json={"name": "Audited role"}).json()
    assert ev.event["organization_id"] == world.org_a
    with rec.expect("role.updated"):
        assert org_admin.patch(f"/api/roles/{role['id']}", json={"can_author": True}).status_code == 200
    with rec.expect("role.users_assigned") as ev:
        assert org_admin.post(f"/api/roles/{role['id']}/users", json={"user_ids": [user["id"]]}).status_code == 204
    assert ev.event["details"]["added"] == [user["id"]]
    with rec.expect("role.forms_assigned"):
        assert org_admin.post(f"/api/roles/{role['id']}/forms", json={"form_ids": []}).status_code == 204
    with rec.expect("role.deactivated"):
        assert org_admin.delete(f"/api/roles/{role['id']}").status_code == 204
    with rec.expect("user.deactivated"):
        assert admin.delete(f"/api/users/{user['id']}").status_code == 200

    # ----- config and secrets: the key, never the value
    with rec.expect("config.set") as ev:
        response = org_admin.put("/api/config/audited_secret", json={"value": SECRET_VALUE, "is_secret": True})
        assert response.status_code == 200, response.text
    assert ev.event["details"] == {"key": "audited_secret", "is_secret": True, "type": "secret"}
    assert ev.event["organization_id"] == world.org_a
    with rec.expect("config.set"):
        assert org_admin.put("/api/config/audited_plain", json={"value": "plain-visible-value"}).status_code == 200
    with rec.expect("config.deleted"):
        assert org_admin.delete("/api/config/audited_secret").status_code == 200

    # ----- schedule edits
    with rec.expect("schedule.created") as ev:
        schedule = admin.post(
            "/api/schedules", json={"workflow": "add", "cron": "0 9 * * *", "params": {"a": 1}, "enabled": False}
        ).json()
    assert ev.event["target_id"] == schedule["id"] and ev.event["details"]["workflow"] == "add"
    with rec.expect("schedule.updated") as ev:
        assert admin.patch(f"/api/schedules/{schedule['id']}", json={"cron": "0 10 * * *"}).status_code == 200
    assert ev.event["details"]["cron"] == "0 10 * * *"
    with rec.expect("schedule.deleted"):
        assert admin.delete(f"/api/schedules/{schedule['id']}").status_code == 200

    # ----- a workspace publish from a notebook
    source = textwrap.dedent(
        '''
        from bifrost import workflow

        @workflow
        async def audited_publish() -> str:
            """Published to be audited."""
            return "ok"
        '''
    )
    with rec.expect("workspace.published") as ev:
        response = admin.post("/api/publish", json={"name": "audited_publish", "source": source})
        assert response.status_code == 201, response.text
    assert ev.event["details"]["file"] == "audited_publish.py" and ev.event["organization_id"] is None

    # ----- values never appear, in the API or the CSV
    everything = admin.get("/api/audit", params={"limit": 1000}).text
    exported = admin.get("/api/audit/export.csv").text
    for value in (SECRET_VALUE, "plain-visible-value", NEW_PASSWORD, "dora-password-1", "wrong-password"):
        assert value not in everything and value not in exported
    admin.close()
    org_admin.close()


def test_integration_connect_is_audited(world: World) -> None:
    with FakeOAuthProvider() as provider:
        integration = define(world, provider, flow="client_credentials", tenant_urls=False)
        map_org(world, integration["name"], "Org B")
        rec = Recorder(world)
        with rec.expect("integration.connected") as ev, world.server.client(world.admin_key) as admin:
            response = admin.post(f"/api/integrations/{integration['name']}/mappings/Org B/connect")
            assert response.status_code == 200, response.text
        assert ev.event["target_id"] == integration["id"] and ev.event["organization_id"] == world.org_b
        exported = rec.admin.get("/api/audit/export.csv").text
        assert provider.client_secret not in exported
        rec.admin.close()


def test_filters_cursor_and_csv(world: World) -> None:
    with browser_session(world):
        pass  # one successful sign-in, so "auth." matches more than the failures
    with world.server.client() as anon:
        for _ in range(3):
            anon.post("/api/auth/login", json={"email": "filter-me@x.example", "password": "nope"})
    with world.server.client(world.admin_key) as admin:
        page = admin.get("/api/audit", params={"actor": "FILTER-ME@", "limit": 2}).json()
        assert [e["action"] for e in page["events"]] == ["auth.login_failed"] * 2 and page["next_before"]
        rest = admin.get("/api/audit", params={"actor": "filter-me@", "before": page["next_before"]}).json()
        assert len(rest["events"]) == 1 and rest["next_before"] is None
        assert {e["id"] for e in page["events"]}.isdisjoint(e["id"] for e in rest["events"])
        # action prefix and exact, organization, GLOBAL, date range
        failed = admin.get("/api/audit", params={"action": "auth.login_failed", "limit": 1000}).json()["events"]
        prefixed = admin.get("/api/audit", params={"action": "auth.", "limit": 1000}).json()["events"]
        assert failed and {e["action"] for e in failed} == {"auth.login_failed"}
        assert len(prefixed) > len(failed)
        in_a = admin.get("/api/audit", params={"organization_id": world.org_a, "limit": 1000}).json()["events"]
        assert in_a and {e["organization_id"] for e in in_a} == {world.org_a}
        assert {e["organization_name"] for e in in_a} == {"Org A"}
        platform_wide = admin.get("/api/audit", params={"organization_id": "GLOBAL", "limit": 1000}).json()["events"]
        assert platform_wide and {e["organization_id"] for e in platform_wide} == {None}
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        assert admin.get("/api/audit", params={"since": tomorrow}).json()["events"] == []
        assert len(admin.get("/api/audit", params={"until": tomorrow, "actor": "filter-me@"}).json()["events"]) == 3
        # bad input: 4xx naming the problem
        bad_date = admin.get("/api/audit", params={"since": "last tuesday"})
        assert bad_date.status_code == 422 and "since" in bad_date.json()["detail"]
        inverted = admin.get("/api/audit", params={"since": tomorrow, "until": "2020-01-01"})
        assert inverted.status_code == 422 and "until" in inverted.json()["detail"]
        assert admin.get("/api/audit", params={"limit": 0}).status_code == 400
        unknown = admin.get("/api/audit", params={"before": "no-such-event"})
        assert unknown.status_code == 422 and "before" in unknown.json()["detail"]
        # CSV: header, one row per event, filters apply, formula-looking cells are defused
        response = admin.get("/api/audit/export.csv", params={"actor": "filter-me@"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert len(rows) == 3 and {r["action"] for r in rows} == {"auth.login_failed"}
        assert all(r["actor_email"] == "filter-me@x.example" and r["ip"] == "127.0.0.1" for r in rows)
        anon_formula = "=cmd|'/c calc'!A1@x.example"
    with world.server.client() as anon:
        anon.post("/api/auth/login", json={"email": anon_formula, "password": "nope"})
    with world.server.client(world.admin_key) as admin:
        rows = list(csv.DictReader(io.StringIO(admin.get("/api/audit/export.csv", params={"actor": "cmd|"}).text)))
        assert rows and rows[0]["actor_email"].startswith("'=")


def test_only_platform_admins_read_the_log(world: World) -> None:
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/api/audit").status_code == 403
        assert alice.get("/api/audit/export.csv").status_code == 403
    with browser_session(world, "alice@a.example", "alice-password") as alice_browser:
        assert alice_browser.get("/admin/audit").status_code == 403
        assert alice_browser.get("/api/audit").status_code == 403
    with world.server.client() as anon:
        assert anon.get("/api/audit").status_code == 401
    # An org-limited key of an admin carries no platform powers.
    with browser_session(world) as admin_browser:
        key = admin_browser.post("/api/api-keys", json={"name": "org key", "organization_id": world.org_a}).json()
    with world.server.client(key["key"]) as limited:
        assert limited.get("/api/audit").status_code == 403


def test_the_page_filters_and_links_the_export(world: World) -> None:
    with browser_session(world) as admin_browser:
        page = admin_browser.get("/admin/audit", params={"action": "auth.login_succeeded"})
        assert page.status_code == 200
        assert "auth.login_succeeded" in page.text and "auth.login_failed</code>" not in page.text
        assert 'href="/api/audit/export.csv?action=auth.login_succeeded"' in page.text
        bad = admin_browser.get("/admin/audit", params={"since": "yesterday-ish"})
        assert bad.status_code == 422 and "since" in bad.text


def test_retention_prunes_old_events_in_batches(world: World) -> None:
    async def scenario() -> tuple[int, int, int]:
        from sqlalchemy import func, select

        from app.db import transaction
        from app.models.audit import AuditEvent
        from app.services.audit.retention import prune

        sessions = world.server.platform.sessions
        old = datetime.now(UTC) - timedelta(days=400)
        async with transaction(sessions) as session:
            session.add_all(AuditEvent(action="test.old", occurred_at=old, details={}) for _ in range(7))
            session.add(AuditEvent(action="test.recent", occurred_at=datetime.now(UTC) - timedelta(days=10)))
        deleted = await prune(sessions, 365, batch=3, pause_seconds=0)
        async with transaction(sessions) as session:
            count = select(func.count()).select_from(AuditEvent)
            old_left = (await session.execute(count.where(AuditEvent.action == "test.old"))).scalar_one()
            recent_left = (await session.execute(count.where(AuditEvent.action == "test.recent"))).scalar_one()
        return deleted, old_left, recent_left

    deleted, old_left, recent_left = world.server.call(scenario)
    assert (deleted, old_left, recent_left) == (7, 0, 1)
