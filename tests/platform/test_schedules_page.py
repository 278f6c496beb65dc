"""The schedules page: admins see every schedule, edit cron expressions (with reasons) and enable/disable."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.platform.conftest import World, browser_session
from tests.platform.schedule_support import create, schedule_of, start_server


@pytest.fixture(scope="module")
def pw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = start_server(tmp_path_factory.mktemp("schedules-page"))
    try:
        yield world
    finally:
        world.server.stop()


def csrf(page: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def test_admins_see_every_schedule_with_its_timing_and_status(pw: World) -> None:
    added = create(pw, workflow="tick", cron="15 6 * * *", organization_id=pw.org_a, params={"label": "a"})
    with browser_session(pw) as admin:
        page = admin.get("/schedules")
    assert page.status_code == 200
    declared = schedule_of(pw, "weekday_report")
    row = page.text[page.text.index(f'id="schedule-{declared["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert 'value="0 9 * * 1-5"' in row and 'value="UTC"' in row and "declared in code" in row
    assert declared["next_run_at"][:16].replace("T", " ") in row and "never" in row and "waiting" in row
    other = page.text[page.text.index(f'id="schedule-{added["id"]}"') :]
    assert "Org A" in other[: other.index("</tr>")] and "added by an admin" in other[: other.index("</tr>")]


def test_editing_the_cron_expression_shows_the_reason_of_a_refusal_and_saves_a_valid_one(pw: World) -> None:
    schedule = create(pw, workflow="tick", cron="0 5 * * *")
    with browser_session(pw) as admin:
        token = csrf(admin.get("/schedules").text)
        refused = admin.post(
            f"/schedules/{schedule['id']}/cron", data={"_csrf_token": token, "cron": "0 25 * * *", "timezone": "UTC"}
        )
        assert refused.status_code == 200
        assert f'id="error-{schedule["id"]}"' in refused.text
        assert "hour field &#39;25&#39;: the last value (25) is higher than the maximum value (23)" in refused.text
        saved = admin.post(
            f"/schedules/{schedule['id']}/cron",
            data={"_csrf_token": token, "cron": "30 4 * * *", "timezone": "Europe/Oslo"},
            follow_redirects=False,
        )
        assert saved.status_code == 303 and saved.headers["location"] == "/schedules"
        del admin.headers["X-CSRFToken"]  # browser_session sends it on every request; a page form does not
        no_token = admin.post(f"/schedules/{schedule['id']}/cron", data={"cron": "1 1 * * *", "timezone": "UTC"})
        assert no_token.status_code == 403
    with pw.server.client(pw.admin_key) as api:
        stored = api.get(f"/api/schedules/{schedule['id']}").json()
    assert (stored["cron"], stored["timezone"]) == ("30 4 * * *", "Europe/Oslo")


def test_disabling_and_enabling_from_the_page(pw: World) -> None:
    schedule = create(pw, workflow="tick", cron="0 3 * * *")
    with browser_session(pw) as admin, pw.server.client(pw.admin_key) as api:
        token = csrf(admin.get("/schedules").text)
        admin.post(f"/schedules/{schedule['id']}/enabled", data={"_csrf_token": token, "enabled": "false"})
        off = api.get(f"/api/schedules/{schedule['id']}").json()
        assert off["enabled"] is False and off["status"] == "disabled" and off["next_run_at"] is None
        page = admin.get("/schedules").text
        row = page[page.index(f'id="schedule-{schedule["id"]}"') :]
        assert ">Enable</button>" in row[: row.index("</tr>")]
        admin.post(f"/schedules/{schedule['id']}/enabled", data={"_csrf_token": token, "enabled": "true"})
        assert api.get(f"/api/schedules/{schedule['id']}").json()["enabled"] is True


def test_members_are_refused_and_anonymous_visitors_sent_to_log_in(pw: World) -> None:
    with browser_session(pw, "alice@a.example", "alice-password") as alice:
        page = alice.get("/schedules")
        assert page.status_code == 403 and "Only platform admins may manage schedules" in page.text
        declared = schedule_of(pw, "weekday_report")
        token = csrf(alice.get("/schedules").text)
        refused = alice.post(f"/schedules/{declared['id']}/enabled", data={"_csrf_token": token, "enabled": "false"})
        assert refused.status_code == 403
    assert schedule_of(pw, "weekday_report")["enabled"] is True
    with httpx.Client(base_url=pw.server.url) as anonymous:
        response = anonymous.get("/schedules", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_adding_a_schedule_from_the_page_with_reasons_then_deleting_it(pw: World) -> None:
    with browser_session(pw) as admin, pw.server.client(pw.admin_key) as api:
        page = admin.get("/schedules").text
        token = csrf(page)
        assert 'id="new-schedule"' in page and '<option value="tick"' in page and f'value="{pw.org_a}"' in page
        form = {"_csrf_token": token, "workflow": "tick", "organization_id": pw.org_a, "timezone": "UTC"}

        # refusals come back with the reason and the form as it was filled in
        bad_cron = admin.post("/schedules/new", data={**form, "cron": "0 9 * * 9", "params": '{"label": "x"}'})
        assert bad_cron.status_code == 200 and 'id="error-new"' in bad_cron.text
        assert "cron: day of week field &#39;9&#39;" in bad_cron.text
        assert 'value="0 9 * * 9"' in bad_cron.text and "{&#34;label&#34;: &#34;x&#34;}" in bad_cron.text
        bad_json = admin.post("/schedules/new", data={**form, "cron": "0 9 * * 1", "params": "{label"})
        assert "params: not valid JSON" in bad_json.text
        not_object = admin.post("/schedules/new", data={**form, "cron": "0 9 * * 1", "params": "[1]"})
        assert "params: must be a JSON object" in not_object.text
        unknown = admin.post("/schedules/new", data={**form, "workflow": "no_such_flow", "cron": "0 9 * * 1"})
        assert 'id="error-new"' in unknown.text and "no_such_flow" in unknown.text
        before = {s["id"] for s in api.get("/api/schedules").json()}

        added = admin.post(
            "/schedules/new",
            data={**form, "cron": "0 9 * * 1", "params": '{"label": "from the page"}', "overlap_policy": "queue"},
            follow_redirects=False,
        )
        assert added.status_code == 303 and added.headers["location"] == "/schedules"
        [schedule] = [s for s in api.get("/api/schedules").json() if s["id"] not in before]
        assert (schedule["workflow_name"], schedule["cron"], schedule["organization_id"]) == (
            "tick",
            "0 9 * * 1",
            pw.org_a,
        )
        assert schedule["params"] == {"label": "from the page"} and schedule["overlap_policy"] == "queue"
        assert schedule["next_run_at"] is not None

        # an admin-added schedule can be deleted from the page; one declared in code has no Delete button
        page = admin.get("/schedules").text
        row = page[page.index(f'id="schedule-{schedule["id"]}"') :]
        assert f'action="/schedules/{schedule["id"]}/delete"' in row[: row.index("</tr>")]
        declared = schedule_of(pw, "weekday_report")
        row = page[page.index(f'id="schedule-{declared["id"]}"') :]
        assert "/delete" not in row[: row.index("</tr>")]
        deleted = admin.post(f"/schedules/{schedule['id']}/delete", data={"_csrf_token": token}, follow_redirects=False)
        assert deleted.status_code == 303
        assert api.get(f"/api/schedules/{schedule['id']}").status_code == 404
        refused = admin.post(f"/schedules/{declared['id']}/delete", data={"_csrf_token": token})
        assert refused.status_code == 200 and "declared in its code" in refused.text
    with browser_session(pw, "alice@a.example", "alice-password") as alice:
        token = csrf(alice.get("/schedules").text)
        member = alice.post("/schedules/new", data={"_csrf_token": token, "workflow": "tick", "cron": "0 9 * * 1"})
        assert member.status_code == 403


def test_run_now_lists_the_firing_with_its_execution_status_and_link(pw: World) -> None:
    """Issue 19: "Run now" on the page, then the firing shows its run's status, linked to the run."""
    schedule = create(pw, workflow="tick", cron="0 3 * * *", organization_id=pw.org_a, params={"label": "now"})
    with browser_session(pw) as admin:
        token = csrf(admin.get("/schedules").text)
        fired = admin.post(f"/schedules/{schedule['id']}/run", data={"_csrf_token": token}, follow_redirects=False)
        assert fired.status_code == 303 and fired.headers["location"] == "/schedules"
        for _ in range(100):  # the run finishes in a worker; the page then shows its final status
            page = admin.get("/schedules").text
            firings = re.search(rf'id="firings-{schedule["id"]}">(.*?)</details>', page, re.S)
            if firings and "Completed" in firings.group(1):
                break
            time.sleep(0.1)
    assert firings, page[-2000:]
    link = re.search(r'<a href="/executions/([^"]+)">Completed</a>', firings.group(1))
    assert link, firings.group(1)
    assert 'id="org-switch"' in page  # the top bar's organization switch is on this page too
