"""The Files page in Chromium (issue 19): an admin uploads, browses, downloads and deletes; a technician
sees only their organization's files and is offered no delete. The console stays free of errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser_support import login
from tests.platform.conftest import World
from tests.platform.pages_support import start_pages_world

CSV = "target,status,ms\n127.0.0.1:8123,up,0.4\n"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_pages_world(tmp_path_factory.mktemp("files-browser"))

    async def write() -> None:
        from app.db import transaction
        from app.services.identity.auth import AuthService

        async with transaction(w.server.platform.sessions) as session:
            alice = await AuthService(session).actor_for_user(w.alice_id)
            bob = await AuthService(session).actor_for_user(w.bob_id)
        await w.server.platform.files.write(alice, "reports/health-1.csv", "workspace", _one(CSV.encode()))
        await w.server.platform.files.write(bob, "reports/bob-only.csv", "workspace", _one(b"bob,only\n"))

    w.server.call(write)
    try:
        yield w
    finally:
        w.server.stop()


def act_in(page: Any, world: World, org_id: str) -> None:
    """What the "Acting in" switch posts (the navigation that holds it is tested elsewhere)."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.context.request.post(
        f"{world.server.url}/session/org", form={"org_id": org_id, "next": "/", "_csrf_token": token}
    )
    assert response.ok, response.status


def listed(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#files-table .file-name, #files-table .file-folder").all_inner_texts()]


def test_an_admin_uploads_browses_downloads_and_deletes(world: World, page: Any, tmp_path: Path) -> None:
    login(page, world, "admin@test.io", "admin-password")
    act_in(page, world, world.org_a)
    page.goto(f"{world.server.url}/files")
    assert "Org A" in page.inner_text("#files-scope")
    assert listed(page) == ["reports/"]
    page.click("#files-table a.file-folder")
    page.click("#files-table a.file-name")
    page.wait_for_selector("#file-csv")  # the CSV opens as a table
    assert page.inner_text("#file-csv thead").split() == ["target", "status", "ms"]
    with page.expect_download() as download:
        page.click("#file-download")
    saved = tmp_path / "health.csv"
    download.value.save_as(saved)
    assert saved.read_text() == CSV

    # Upload into uploads, then delete it again.
    page.click("#file-crumbs a")  # back to the location root
    page.click("#file-locations >> text=Uploads")
    source = tmp_path / "notes.txt"
    source.write_text("uploaded from Chromium")
    page.set_input_files("#upload-file", str(source))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=Uploaded notes.txt")
    assert listed(page) == ["notes.txt"]
    page.click("#files-table a.file-name")
    assert page.inner_text("#file-text") == "uploaded from Chromium"
    page.click("#file-view button.danger")
    page.wait_for_selector("text=Deleted uploads/notes.txt")
    assert listed(page) == []
    assert page.console_errors == []


def test_a_technician_sees_only_their_organization_and_no_delete(world: World, page: Any) -> None:
    login(page, world, "bob@b.example", "bob-password")
    page.goto(f"{world.server.url}/files?path=reports")
    assert listed(page) == ["bob-only.csv"]
    assert page.locator("button.danger").count() == 0
    page.click("#files-table a.file-name")
    assert page.locator("#file-view button.danger").count() == 0
    # Org A's report is not there for Bob, whatever the URL says.
    response = page.goto(f"{world.server.url}/files/view?path=reports/health-1.csv")
    assert response.status == 404 and "127.0.0.1:8123" not in page.content()
    assert page.console_errors == [] or all("404" in e for e in page.console_errors)
