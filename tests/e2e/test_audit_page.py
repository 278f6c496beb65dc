"""The audit log page in Chromium: the events of a sign-in, filters, the CSV download, the CSP, technicians refused."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.platform.conftest import World


def _login(page: Any, world: World, email: str, password: str) -> None:
    page.goto(f"{world.server.url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_admins_filter_the_log_and_download_it(world: World, page: Any) -> None:
    _login(page, world, "alice@a.example", "not-her-password")  # a failed sign-in, from this browser
    assert "Invalid email or password" in page.inner_text("[role=alert]")
    _login(page, world, "admin@test.io", "admin-password")
    page.wait_for_url(f"{world.server.url}/")
    page.click("#admin-menu summary")  # admin pages are in the top bar's Admin menu
    page.click("nav >> text=Audit")
    page.wait_for_url(f"{world.server.url}/admin/audit")
    rows = page.inner_text("#audit-events")
    assert "auth.login_failed" in rows and "auth.login_succeeded" in rows and "127.0.0.1" in rows

    # Filter by who and action (a bookmarkable GET form)
    page.fill("#audit-actor", "alice@")
    page.fill("#audit-action", "auth.login_failed")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url("**/admin/audit?*")
    rows = page.locator("#audit-events tbody tr")
    assert rows.count() >= 1
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert all("auth.login_failed" in t and "alice@a.example" in t for t in texts)
    assert "Org A" in texts[0]

    # An organization filter with nothing in it says so
    page.select_option("#audit-org", label="Org B")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-empty")

    # The CSV of the filtered view downloads through the browser's session
    page.select_option("#audit-org", label="All")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector("#audit-events")
    with page.expect_download() as info:
        page.click("#audit-export")
    content = open(info.value.path(), encoding="utf-8").read()
    exported = list(csv.DictReader(io.StringIO(content)))
    assert exported and {r["action"] for r in exported} == {"auth.login_failed"}
    assert {r["actor_email"] for r in exported} == {"alice@a.example"}
    assert [m for m in page.console_errors if "Content Security Policy" in m or "Refused to" in m] == []
    assert page.console_errors == []

    page.set_viewport_size({"width": 390, "height": 800})  # phone width: no horizontal scrolling of the page
    page.goto(f"{world.server.url}/admin/audit")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_technicians_are_refused(world: World, page: Any) -> None:
    _login(page, world, "alice@a.example", "alice-password")
    page.wait_for_url(f"{world.server.url}/")
    assert page.locator("nav >> text=Audit").count() == 0
    response = page.goto(f"{world.server.url}/admin/audit")
    assert response is not None and response.status == 403
    assert "Only platform admins may read the audit log." in page.inner_text("main")
