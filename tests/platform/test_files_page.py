"""The Files page over HTTP (issue 19): browse, view, download, upload into uploads, delete by admins.

A real server and SQLite file; the files are written through the service (as a workflow's
``files.write`` would) into Org A's and Org B's areas. Alice (Org A) and Bob (Org B) are
technicians; the admin acts in an organization through the "Acting in" switch.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed
from tests.platform.pages_support import PageClient, logged_in

MAX_FILE_BYTES = 64 * 1024
ALICE = ("alice@a.example", "alice-password")
BOB = ("bob@b.example", "bob-password")
ADMIN = ("admin@test.io", "admin-password")
CSV = "target,status,ms\n127.0.0.1:8123,up,0.4\n"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(
        tmp_path_factory.mktemp("files-page"), login_rate_limit_per_minute=10_000, max_file_bytes=MAX_FILE_BYTES
    )
    server = LiveServer(settings).start()
    data = server.call(lambda: seed(server.platform))
    w = World(server=server, **data)

    async def write_files() -> None:
        from app.db import transaction
        from app.services.identity.auth import AuthService

        async with transaction(server.platform.sessions) as session:
            auth = AuthService(session)
            alice = await auth.actor_for_user(w.alice_id)
            bob = await auth.actor_for_user(w.bob_id)
        files = server.platform.files
        await files.write(alice, "reports/health-1.csv", "workspace", _one(CSV.encode()))
        await files.write(alice, "page.html", "workspace", _one(b"<script>alert(1)</script>"))
        await files.write(alice, "blob.bin", "workspace", _one(b"\xff\xfe\x00binary"))
        await files.write(bob, "reports/bob-secret.csv", "workspace", _one(b"bob,only\n"))
        await files.write(alice, "scratch.txt", "temp", _one(b"scratch"))

    server.call(write_files)
    try:
        yield w
    finally:
        server.stop()


async def _write_as(world: World, user_id: str, path: str) -> None:
    from app.db import transaction
    from app.services.identity.auth import AuthService

    async with transaction(world.server.platform.sessions) as session:
        actor = await AuthService(session).actor_for_user(user_id)
    await world.server.platform.files.write(actor, path, "workspace", _one(b"old"))


async def _staging_files(world: World) -> list[str]:
    root = world.server.settings.home / "files" / ".staging"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def acting_in(client: PageClient, org_id: str) -> None:
    assert client.post("/session/org", {"org_id": org_id, "next": "/"}).status_code == 303


def upload(client: PageClient, folder: str, name: str, data: bytes, *, csrf: bool = True) -> httpx.Response:
    fields = {"path": folder, **({"_csrf_token": client.csrf} if csrf else {})}
    return client.http.post("/files/upload", data=fields, files={"file": (name, data, "text/plain")})


def names(page: httpx.Response) -> list[str]:
    return re.findall(r'class="file-(?:name|folder)">([^<]+)<', page.text)


# ----- browsing and permissions --------------------------------------------------------------------
def test_a_technician_browses_their_organizations_folders(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        root = alice.get("/files")
        assert root.status_code == 200 and "Org A" in root.text
        assert names(root) == ["reports/", "blob.bin", "page.html"]  # folders first
        reports = alice.get("/files", params={"path": "reports"})
        assert names(reports) == ["health-1.csv"] and f"{len(CSV)} bytes" in reports.text
        assert 'action="/files/delete"' not in reports.text  # technicians are offered no delete
        assert names(alice.get("/files", params={"location": "temp"})) == ["scratch.txt"]
        assert 'id="upload-form"' in alice.get("/files", params={"location": "uploads"}).text
        assert "files-empty" in alice.get("/files", params={"location": "uploads", "path": "nothing-here"}).text


def test_the_health_check_csv_opens_as_a_table_and_downloads(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        view = alice.get("/files/view", params={"path": "reports/health-1.csv"})
        assert view.status_code == 200
        assert '<th scope="col">target</th>' in view.text and "127.0.0.1:8123" in view.text
        download = alice.get("/files/download", params={"path": "reports/health-1.csv"})
    assert download.status_code == 200 and download.text == CSV
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''health-1.csv"
    assert download.headers["x-content-type-options"] == "nosniff"


def test_stored_html_is_shown_escaped_and_downloaded_never_inline(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        view = alice.get("/files/view", params={"path": "page.html"})
        assert "<script>alert(1)</script>" not in view.text and "&lt;script&gt;" in view.text
        assert "not text" in alice.get("/files/view", params={"path": "blob.bin"}).text
        download = alice.get("/files/download", params={"path": "page.html"})
    assert download.headers["content-type"].startswith("application/octet-stream")
    assert download.headers["content-disposition"].startswith("attachment")


def test_a_technician_of_another_organization_gets_404_for_every_file_of_org_a(world: World) -> None:
    with logged_in(world, *BOB) as bob:
        assert names(bob.get("/files", params={"path": "reports"})) == ["bob-secret.csv"]
        for route in ("/files/view", "/files/download"):
            response = bob.get(route, params={"path": "reports/health-1.csv"})
            assert response.status_code == 404, (route, response.text)
            assert "127.0.0.1:8123" not in response.text
        # Paths that try to name Org A's folder stay inside Bob's own area.
        for path in (f"../../{world.org_a}/workspace/reports/health-1.csv", f"{world.org_a}/workspace/page.html"):
            assert bob.get("/files/download", params={"path": path}).status_code in (404, 422)


def test_a_platform_admin_sees_the_organization_they_act_in(world: World) -> None:
    with logged_in(world, *ADMIN) as admin:
        assert "global area" in admin.get("/files").text and names(admin.get("/files")) == []
        acting_in(admin, world.org_b)
        page = admin.get("/files", params={"path": "reports"})
        assert "Org B" in page.text and names(page) == ["bob-secret.csv"]
        assert 'action="/files/delete"' in page.text


# ----- upload -------------------------------------------------------------------------------------
def test_a_technician_uploads_into_uploads_and_a_workflow_can_read_it(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        response = upload(alice, "notes", "notes.txt", b"hello from the page")
        assert response.status_code == 303 and response.headers["location"] == "/files?location=uploads&path=notes"
        page = alice.get("/files", params={"location": "uploads", "path": "notes"})
        assert "Uploaded notes/notes.txt" in page.text and names(page) == ["notes.txt"]
        again = upload(alice, "notes", "notes.txt", b"replaced?")
        assert again.status_code == 303
        assert "already has" in alice.get("/files", params={"location": "uploads", "path": "notes"}).text
    # The SDK's view of the same file: Alice's API key, the uploads location, the first content kept.
    with world.server.client(world.alice_key) as api:
        read = api.get("/api/files/content", params={"location": "uploads", "path": "uploads/notes/notes.txt"})
    assert read.status_code == 200 and read.text == "hello from the page"
    with world.server.client(world.bob_key) as api:
        assert (
            api.get("/api/files/content", params={"location": "uploads", "path": "notes/notes.txt"}).status_code == 404
        )


def test_upload_over_the_limit_is_413_and_stores_nothing(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        # Past the file limit but within the form's framing room: the store stops at the limit.
        big = upload(alice, "", "big.bin", b"x" * (MAX_FILE_BYTES + 1))
        assert big.status_code == 413 and "BIFROST_MAX_FILE_BYTES" in big.text
        # Past the route's body limit: refused by the guard before the body is read.
        huge = upload(alice, "", "huge.bin", b"x" * (MAX_FILE_BYTES + 2 * 1024 * 1024))
        assert huge.status_code == 413
        assert not {"big.bin", "huge.bin"} & set(names(alice.get("/files", params={"location": "uploads"})))
        assert world.server.call(lambda: _staging_files(world)) == []


def test_a_file_name_or_folder_that_is_not_a_plain_name_is_refused(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        # Browsers may send a client path: only its last part is kept.
        assert upload(alice, "scans", "C:\\fakepath\\scan.txt", b"scan").status_code == 303
        assert "scan.txt" in names(alice.get("/files", params={"location": "uploads", "path": "scans"}))
        for folder in ("../workspace", "/etc", "a\\b", "..", "a/../../b"):
            response = upload(alice, folder, "x.txt", b"x")
            assert response.status_code == 422, (folder, response.text)
            assert "path" in response.text
        assert upload(alice, "", "..", b"x").status_code == 303  # a flash naming the file name
        assert "not a plain name" in alice.get("/files", params={"location": "uploads"}).text


# ----- delete -------------------------------------------------------------------------------------
def test_only_platform_admins_delete_and_the_delete_is_audited(world: World) -> None:
    world.server.call(lambda: _write_as(world, world.alice_id, "old/delete-me.txt"))
    with logged_in(world, *ALICE) as alice:
        assert upload(alice, "evidence", "photo.txt", b"proof").status_code == 303
        refused = alice.post("/files/delete", {"location": "workspace", "path": "old/delete-me.txt"})
        assert refused.status_code == 403 and "Only platform admins" in refused.text
        assert "delete-me.txt" in names(alice.get("/files", params={"path": "old"}))
    with logged_in(world, *ADMIN) as admin:
        acting_in(admin, world.org_a)
        deleted = admin.post("/files/delete", {"location": "workspace", "path": "old/delete-me.txt"})
        assert deleted.status_code == 303 and deleted.headers["location"] == "/files?location=workspace&path=old"
        folder = admin.get(deleted.headers["location"])
        assert "Deleted workspace/old/delete-me.txt" in folder.text and names(folder) == []
        # Uploads too (workflows cannot delete them; an admin can).
        assert admin.post("/files/delete", {"location": "uploads", "path": "evidence/photo.txt"}).status_code == 303
        missing = admin.post("/files/delete", {"location": "workspace", "path": "old/delete-me.txt"})
        assert missing.status_code == 404
    with world.server.client(world.admin_key) as api:
        events = api.get("/api/audit", params={"action": "file.deleted"}).json()
    assert {e["target_id"] for e in events["events"]} >= {"workspace/old/delete-me.txt", "uploads/evidence/photo.txt"}


# ----- attacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/files", {"path": "../.."}),
        ("/files", {"path": "/etc"}),
        ("/files", {"location": "../workspace"}),
        ("/files", {"location": "secrets"}),
        ("/files/view", {"path": "../../../home/session.key"}),
        ("/files/view", {"path": "reports/../../x.csv"}),
        ("/files/view", {"path": "reports\\health-1.csv"}),
        ("/files/view", {"path": "a\x00b"}),
        ("/files/download", {"path": "../../bifrost.db"}),
        ("/files/download", {"location": "..", "path": "x"}),
        ("/files/download", {"path": ""}),
    ],
)
def test_path_traversal_in_every_query_parameter_is_a_4xx_page(
    world: World, route: str, params: dict[str, str]
) -> None:
    with logged_in(world, *ALICE) as alice:
        response = alice.get(route, params=params)
    assert response.status_code in (400, 422), (route, params, response.status_code)
    assert response.headers["content-type"].startswith("text/html")
    assert "Invalid input" in response.text or "Bad request" in response.text


@pytest.mark.parametrize(
    "form",
    [
        {"location": "workspace", "path": "../../home/session.key"},
        {"location": "workspace", "path": "/etc/passwd"},
        {"location": "../x", "path": "a.txt"},
        {"location": "workspace", "path": "reports"},  # a folder, not a file
    ],
)
def test_path_traversal_in_every_delete_field_is_refused(world: World, form: dict[str, str]) -> None:
    with logged_in(world, *ADMIN) as admin:
        acting_in(admin, world.org_a)
        response = admin.post("/files/delete", form)
    assert response.status_code in (400, 422), (form, response.status_code)


def test_an_anonymous_visitor_is_sent_to_sign_in_and_cannot_write(world: World) -> None:
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        for route in ("/files", "/files/view?path=reports/health-1.csv", "/files/download?path=page.html"):
            response = anonymous.get(route)
            assert response.status_code == 303 and response.headers["location"].startswith("/login"), route
        anonymous.get("/login")
        token = anonymous.cookies["csrftoken"]
        posted = anonymous.post(
            "/files/upload", data={"_csrf_token": token, "path": ""}, files={"file": ("anon.txt", b"x")}
        )
        assert posted.status_code in (303, 401) and "/login" in posted.headers.get("location", "/login")
        deleted = anonymous.post("/files/delete", data={"_csrf_token": token, "location": "workspace", "path": "x"})
        assert deleted.status_code in (303, 401)
    with world.server.client(world.admin_key) as api:
        api.headers["X-Bifrost-Org"] = world.org_a
        assert "anon.txt" not in api.get("/api/files/list", params={"location": "uploads"}).json()


def test_upload_and_delete_without_the_csrf_token_are_refused(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        response = upload(alice, "", "forged.txt", b"x", csrf=False)
        assert response.status_code == 403
        assert "forged.txt" not in names(alice.get("/files", params={"location": "uploads"}))
    with logged_in(world, *ADMIN) as admin:
        acting_in(admin, world.org_a)
        forged = admin.post("/files/delete", {"location": "workspace", "path": "page.html"}, csrf=False)
        assert forged.status_code == 403
        assert "page.html" in names(admin.get("/files"))


# ----- links from results -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "href"),
    [
        (
            "reports/health-20261206T180000Z.csv",
            "/files/view?location=workspace&path=reports%2Fhealth-20261206T180000Z.csv",
        ),
        ("uploads/f1/0a/scan.pdf", "/files/view?location=uploads&path=f1%2F0a%2Fscan.pdf"),
        ("summary.txt", "/files/view?location=workspace&path=summary.txt"),
        ("../../etc/passwd.txt", None),
        ("/etc/hosts.txt", None),
        ("https://example.com/a.csv", None),
        ("v1.2", None),
        ("example.com", None),
        ("all good", None),
        (42, None),
    ],
)
def test_file_link_links_only_values_that_name_a_stored_file(value: object, href: str | None) -> None:
    from app.web.file_links import file_link

    html = str(file_link(value))
    if href is None:
        assert "<a " not in html and "<img" not in html
    else:
        assert html == f'<a href="{href.replace("&", "&amp;")}" class="file-link">{value}</a>'


def test_file_link_escapes_what_it_links() -> None:
    from app.web.file_links import file_link

    html = str(file_link("<img src=x onerror=alert(1)>.csv"))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.csv</a>" in html


def test_a_folder_too_long_to_show_says_how_many_more_it_holds(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services.files import browse

    async def write_many() -> None:
        for name in ("many/a.txt", "many/b.txt", "many/c.txt", "many/sub/d.txt"):
            await _write_as(world, world.alice_id, name)

    world.server.call(write_many)
    monkeypatch.setattr(browse, "MAX_ENTRIES", 3)  # the server runs in this process
    with logged_in(world, *ALICE) as alice:
        page = alice.get("/files", params={"path": "many"})
    assert names(page) == ["sub/", "a.txt", "b.txt"] and "1 more not shown" in page.text
