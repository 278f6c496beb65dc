"""The schedules page: admins see every schedule, edit cron expressions (with reasons) and enable/disable."""

from __future__ import annotations

import re
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
