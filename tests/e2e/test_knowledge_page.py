"""The knowledge page in a real browser: upload, live job progress (htmx), documents, search with scores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.platform.conftest import World

pytestmark = pytest.mark.e2e


def login(page: Any, world: World) -> None:
    page.goto(f"{world.server.url}/login")
    page.fill("#email", "admin@test.io")
    page.fill("#password", "admin-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")


def test_upload_watch_progress_and_search(page: Any, world: World, tmp_path: Path) -> None:
    login(page, world)
    # Admins reach the page from the main navigation's Admin menu.
    page.click("#admin-menu summary")
    page.click('nav.mainnav a[href="/knowledge"]')
    page.wait_for_url(f"{world.server.url}/knowledge")
    assert page.locator("h1").first.inner_text() == "Knowledge"
    assert page.locator('nav.mainnav a[aria-current="page"]').text_content() == "Knowledge"

    runbook = tmp_path / "wifi-runbook.md"
    runbook.write_text(
        "# Office Wi-Fi\n\n"
        + "\n\n".join(f"Access point {i} on floor {i % 5} is restarted from the controller page." for i in range(60))
        + "\n\nVisitors join the Guest network with the code printed at reception.\n"
    )
    page.set_input_files("#upload-file", str(runbook))
    page.fill("#upload-ns", "e2e-network")
    page.fill("#upload-key", "wifi")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{world.server.url}/knowledge#jobs")
    # The jobs table polls itself (htmx) until the job is done: no reload by the test.
    row = page.locator('#jobs-table tr[data-status="done"]', has_text="wifi-runbook.md")
    row.wait_for(timeout=120_000)
    assert "chunks" in row.inner_text()

    page.fill("#search-q", "how do guests get on the wireless?")
    page.click("#search-form button[type=submit]")
    first = page.locator("#search-results li").first
    first.wait_for()
    assert "wifi" in first.inner_text() and float(first.locator(".score").inner_text()) > 0.2

    page.click("#namespaces-table a:text('e2e-network')")
    page.locator("#documents-table").wait_for()
    page.click("#documents-table a:text('wifi')")
    assert page.locator("#chunks li").count() > 1
    if os.environ.get("BIFROST_KNOWLEDGE_SCREENSHOT"):
        page.screenshot(path=os.environ["BIFROST_KNOWLEDGE_SCREENSHOT"], full_page=True)
    assert page.console_errors == []
