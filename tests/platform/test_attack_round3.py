"""Attack round 3, over real HTTP: the routes and mechanisms that landed since 7878102.

Files page (XSS via names and contents, traversal, CSRF/Origin, body limits, admin-only delete), the
Account page and the admin's password reset, the ``file_link`` filter and the shared result partial
(a workflow that returns what its caller typed), the history filters, revocations through the
API-key/actor cache on the execute hot path (key revoked, user deactivated, role removed, access
policy changed: effective at once on the same server), the live-event subscriptions of runs and chat
turns (another organization's viewer), and the sign-in throttle against a forged ``X-Forwarded-For``.

Every test is an attack that must fail. The five holes this review found (role cache, lone surrogates in
errors and results, digit-like headers) were fixed; their tests stay here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.conftest import World, seed
from tests.platform.pages_support import PageClient, logged_in

MAX_FILE_BYTES = 64 * 1024
ALICE = ("alice@a.example", "alice-password")
BOB = ("bob@b.example", "bob-password")
ADMIN = ("admin@test.io", "admin-password")
EVIL = "https://evil.example"

XSS_NAME = "<img src=x onerror=alert(1)>.txt"
XSS_VALUES = [
    "<img src=x onerror=alert(1)>.csv",  # reads as a stored file path: becomes a link, text escaped
    '"><svg onload=alert(2)>/r.csv',  # tries to break out of the href attribute
    "<script>alert(3)</script>",  # plain text
    "javascript:alert(4)//x.csv",  # a scheme: never a link
]
RAW_MARKERS = ("<img src=x", "<svg onload", "<script>alert(3)", 'href="javascript:')

CASES = '''
from bifrost import workflow


@workflow(access=["R3Ops"])
async def r3_role_only() -> str:
    return "ran"


@workflow
async def r3_policy_target() -> str:
    return "ran"


@workflow(is_tool=True)
async def r3_echo(value: str = "") -> dict:
    """Returns what its caller typed (object result)."""
    return {"report": value, "note": value}


@workflow
async def r3_surrogate_result() -> dict:
    return {"value": "odd " + chr(0xD800) + " name"}


@workflow(is_tool=True)
async def r3_rows(value: str = "") -> list:
    """Returns what its caller typed (table result)."""
    return [{"name": value, "path": value}]
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("attack-round3")
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "round3_cases.py").write_text(CASES)
    settings = make_settings(
        tmp, workspace=workspace, login_rate_limit_per_minute=10_000, max_file_bytes=MAX_FILE_BYTES
    )
    server = LiveServer(settings).start()
    try:
        yield World(server=server, **server.call(lambda: seed(server.platform)))
    finally:
        server.stop()


def _no_raw_markup(body: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in body, marker


def _upload(client: PageClient, folder: str, name: str, data: bytes, **headers: str) -> httpx.Response:
    return client.http.post(
        "/files/upload",
        data={"path": folder, "_csrf_token": client.csrf},
        files={"file": (name, data, "text/plain")},
        headers=headers,
    )


def _execute(world: World, key: str, name: str, params: dict[str, Any] | None = None, **headers: str) -> int:
    with world.server.client(key, **headers) as client:
        return client.post(f"/api/workflows/{name}/execute?wait=true", json={"params": params or {}}).status_code


def _new_user_key(world: World, email: str, org: str) -> tuple[str, str]:
    """A fresh user of ``org`` with an API key: (user id, key)."""

    async def make() -> tuple[str, str]:
        from app.db import transaction
        from app.services.identity.auth import ApiKeyService, AuthService
        from app.services.identity.users import UserService

        async with transaction(world.server.platform.sessions) as session:
            auth = AuthService(session)
            admin = await auth.actor_for_user(world.admin_id)
            user = await UserService(session).create(admin, email, "Round3", org_id=org, password="round3-password")
            _, key = await ApiKeyService(session).create(await auth.actor_for_user(user.id), "r3 key")
        return user.id, key

    return world.server.call(make)  # type: ignore[no-any-return]


async def _key_of(world: World, user_id: str) -> tuple[str, str]:
    """A new API key of an existing user: (key id, key)."""
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService

    async with transaction(world.server.platform.sessions) as session:
        actor = await AuthService(session).actor_for_user(user_id)
        row, key = await ApiKeyService(session).create(actor, "r3 revocable")
    return row.id, key


_ROLES: dict[str, str] = {}  # roles made by one test and reused by another (same module world)


# ----- Files page ----------------------------------------------------------------------------------
def test_an_uploaded_file_name_with_markup_is_shown_escaped(world: World) -> None:
    """Attacker: Alice uploads a file whose name is HTML; the listing, flash and view stay inert."""
    with logged_in(world, *ALICE) as alice:
        response = _upload(alice, "xss", XSS_NAME, b"<script>alert(5)</script>")
        assert response.status_code == 303, response.text
        listing = alice.get("/files", params={"location": "uploads", "path": "xss"})
        assert listing.status_code == 200
        assert "&lt;img src=x onerror=alert(1)&gt;.txt" in listing.text
        view = alice.get("/files/view", params={"location": "uploads", "path": f"xss/{XSS_NAME}"})
        assert view.status_code == 200
        download = alice.get("/files/download", params={"location": "uploads", "path": f"xss/{XSS_NAME}"})
    _no_raw_markup(listing.text)
    _no_raw_markup(view.text)
    assert "<script>alert(5)" not in view.text
    assert download.headers["content-disposition"].startswith("attachment; filename*=UTF-8''%3Cimg")
    assert download.headers["content-type"].startswith("application/octet-stream")


def test_a_csv_with_markup_cells_renders_as_escaped_table(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        data = b'name,cmd\n"<img src=x onerror=alert(1)>","<script>alert(3)</script>"\n'
        assert _upload(alice, "csv", "cells.csv", data).status_code == 303
        view = alice.get("/files/view", params={"location": "uploads", "path": "csv/cells.csv"})
    assert view.status_code == 200 and "<th" in view.text
    _no_raw_markup(view.text)


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("../workspace", "escape.txt"),
        ("../../{org_b}/uploads", "escape.txt"),
        ("/etc", "escape.txt"),
        ("a\\..\\..", "escape.txt"),
        ("ok", ".."),
        ("ok", "x\r\nSet-Cookie: a=b.txt"),
    ],
)
def test_upload_path_traversal_is_refused(world: World, folder: str, name: str) -> None:
    """Attacker: Bob (Org B) tries to write outside his uploads folder or into Org A's."""
    folder = folder.format(org_b=world.org_b, org_a=world.org_a)
    with logged_in(world, *BOB) as bob:
        response = _upload(bob, folder, name, b"pwned")
        assert response.status_code in (303, 400, 422), response.text
        if response.status_code == 303:  # refused with a flash, or stored inside uploads under a plain name
            assert response.headers["location"].startswith("/files?location=uploads")
    home = world.server.settings.home
    assert not list(home.rglob("escape.txt")) or all(
        f"{world.org_b}/uploads" in str(p) for p in home.rglob("escape.txt")
    )
    assert (
        not list((home / "files" / world.org_a).rglob("*pwned*")) if (home / "files" / world.org_a).exists() else True
    )


def test_a_backslash_file_name_lands_in_the_shown_uploads_folder_only(world: World) -> None:
    with logged_in(world, *BOB) as bob:
        response = _upload(bob, "deep", "..\\..\\..\\workspace\\planted.txt", b"planted")
        assert response.status_code == 303
    planted = list(world.server.settings.home.rglob("planted.txt"))
    assert all(p.parent.name == "deep" and p.parent.parent.name == "uploads" for p in planted), planted


def test_file_routes_keep_to_the_viewers_organization(world: World) -> None:
    """Attacker: Bob reads Alice's uploads through every parameter shape."""
    with logged_in(world, *ALICE) as alice:
        assert _upload(alice, "secret", "alice-only.txt", b"alice secret").status_code == 303
    with logged_in(world, *BOB) as bob:
        for path in (
            "secret/alice-only.txt",
            "uploads/secret/alice-only.txt",
            f"../../{world.org_a}/uploads/secret/alice-only.txt",
            f"secret/../../../{world.org_a}/uploads/secret/alice-only.txt",
        ):
            for route in ("/files/view", "/files/download"):
                response = bob.get(route, params={"location": "uploads", "path": path})
                assert response.status_code in (404, 422), (route, path, response.status_code)
                assert "alice secret" not in response.text
        for location in ("../uploads", "uploads/..", "UPLOADS", f"../{world.org_a}"):
            response = bob.get("/files/download", params={"location": location, "path": "secret/alice-only.txt"})
            assert response.status_code in (404, 422), location


def test_only_admins_delete_files_and_never_without_csrf_or_from_another_site(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        assert _upload(alice, "keep", "keep.txt", b"keep").status_code == 303
        refused = alice.post("/files/delete", {"location": "uploads", "path": "keep/keep.txt"})
        assert refused.status_code == 403
    with logged_in(world, *ADMIN) as admin:
        assert admin.post("/session/org", {"org_id": world.org_a, "next": "/"}).status_code == 303
        form = {"location": "uploads", "path": "keep/keep.txt"}
        assert admin.post("/files/delete", form, csrf=False).status_code == 403
        cross = admin.http.post("/files/delete", data={**form, "_csrf_token": admin.csrf}, headers={"Origin": EVIL})
        assert cross.status_code == 403
        for bad in ({"location": "../uploads", "path": "keep/keep.txt"}, {"location": "uploads", "path": "../../x"}):
            assert admin.post("/files/delete", bad).status_code in (400, 404, 422), bad
    with logged_in(world, *ALICE) as alice:
        still = alice.get("/files/view", params={"location": "uploads", "path": "keep/keep.txt"})
        assert still.status_code == 200


def test_upload_from_another_site_or_without_token_or_too_large_is_refused(world: World) -> None:
    with logged_in(world, *ALICE) as alice:
        assert _upload(alice, "x-site", "a.txt", b"a", Origin=EVIL).status_code == 403
        assert _upload(alice, "x-site", "b.txt", b"b", Origin="null").status_code == 403
        no_token = alice.http.post("/files/upload", data={"path": "x-site"}, files={"file": ("c.txt", b"c")})
        assert no_token.status_code == 403
        big = _upload(alice, "x-site", "big.txt", b"x" * (MAX_FILE_BYTES * 3))
        assert big.status_code == 413
        listing = alice.get("/files", params={"location": "uploads", "path": "x-site"})
        assert "a.txt" not in listing.text and "b.txt" not in listing.text and "big.txt" not in listing.text
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        response = anonymous.post("/files/upload", files={"file": ("d.txt", b"d")}, data={"path": ""})
        assert response.status_code in (401, 403) or response.headers.get("location", "").startswith("/login")


def test_an_upload_never_replaces_a_file_a_workflow_reads(world: World) -> None:
    """Attacker: Alice uploads again under the name of a file already there (a form upload being read)."""
    with logged_in(world, *ALICE) as alice:
        assert _upload(alice, "evidence", "report.txt", b"original").status_code == 303
        again = _upload(alice, "evidence", "report.txt", b"replaced")
        assert again.status_code == 303
        case = _upload(alice, "evidence", "REPORT.txt", b"case-variant")
        assert case.status_code == 303
        body = alice.get("/files/download", params={"location": "uploads", "path": "evidence/report.txt"}).text
    assert body == "original"


# ----- Account page and the admin's password reset -----------------------------------------------
def _can_login(world: World, email: str, password: str) -> bool:
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        client.get("/login")
        form = {"email": email, "password": password, "next": "/", "_csrf_token": client.cookies["csrftoken"]}
        return client.post("/login", data=form).status_code == 303


def test_a_technician_cannot_reset_another_users_password(world: World) -> None:
    """Attacker: Alice tries the admin's reset on Bob and on the admin, by page and by API key."""
    form = {"new_password": "attacker-pass-1", "confirm_password": "attacker-pass-1"}
    with logged_in(world, *ALICE) as alice:
        for target in (world.bob_id, world.admin_id):
            assert alice.get(f"/admin/users/{target}/password").status_code == 403
            assert alice.post(f"/admin/users/{target}/password", form).status_code == 403
    with world.server.client(world.alice_key) as api:
        response = api.post(f"/admin/users/{world.bob_id}/password", data=form)
        assert response.status_code in (401, 403, 415)
    assert not _can_login(world, "bob@b.example", "attacker-pass-1")
    assert _can_login(world, *BOB)


def test_the_admin_reset_needs_the_csrf_token_and_our_origin(world: World) -> None:
    form = {"new_password": "forged-pass-1", "confirm_password": "forged-pass-1"}
    with logged_in(world, *ADMIN) as admin:
        assert admin.post(f"/admin/users/{world.bob_id}/password", form, csrf=False).status_code == 403
        cross = admin.http.post(
            f"/admin/users/{world.bob_id}/password",
            data={**form, "_csrf_token": admin.csrf},
            headers={"Origin": EVIL},
        )
        assert cross.status_code == 403
        wrong_token = admin.http.post(f"/admin/users/{world.bob_id}/password", data={**form, "_csrf_token": "x" * 40})
        assert wrong_token.status_code == 403
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        anonymous.get("/login")
        response = anonymous.post(
            f"/admin/users/{world.bob_id}/password",
            data={**form, "_csrf_token": anonymous.cookies["csrftoken"]},
        )
        assert response.status_code in (401, 403) or response.headers.get("location", "").startswith("/login")
    assert not _can_login(world, "bob@b.example", "forged-pass-1")


def test_own_password_change_needs_token_origin_current_password_and_a_small_body(world: World) -> None:
    form = {
        "current_password": "alice-password",
        "new_password": "alice-stolen-1",
        "confirm_password": "alice-stolen-1",
    }
    with logged_in(world, *ALICE) as alice:
        assert alice.post("/account/password", form, csrf=False).status_code == 403
        cross = alice.http.post("/account/password", data={**form, "_csrf_token": alice.csrf}, headers={"Origin": EVIL})
        assert cross.status_code == 403
        guess = alice.post("/account/password", {**form, "current_password": "guess-guess"})
        assert guess.status_code == 422
        huge = alice.http.post(
            "/account/password",
            data={**form, "current_password": "guess-2", "_csrf_token": alice.csrf, "pad": "x" * (5 * 1024 * 1024)},
        )
        assert huge.status_code == 413
    with world.server.client(world.alice_key) as api:  # a stolen API key cannot change the password
        response = api.post("/account/password", data=form)
        assert response.status_code in (400, 401, 403, 415, 422)
    assert _can_login(world, *ALICE)
    assert not _can_login(world, "alice@a.example", "alice-stolen-1")


def test_a_generated_password_is_shown_once_never_cached_nor_logged(world: World) -> None:
    user_id, _ = _new_user_key(world, "gina@a.example", world.org_a)
    with logged_in(world, "gina@a.example", "round3-password") as gina, logged_in(world, *ADMIN) as admin:
        page = admin.post(f"/admin/users/{user_id}/password", {"new_password": "", "confirm_password": ""})
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "location" not in page.headers
        assert gina.get("/account").status_code == 303  # her session ended with the reset
        with world.server.client(world.admin_key) as api:
            audit = api.get("/api/audit", params={"action": "user.updated"}).text
        assert "round3-password" not in audit
    assert not _can_login(world, "gina@a.example", "round3-password")


# ----- results: file_link and the shared result partial ------------------------------------------
@pytest.mark.parametrize("workflow", ["r3_echo", "r3_rows"])
def test_a_result_echoing_markup_is_escaped_on_the_run_page(world: World, workflow: str) -> None:
    """Attacker: a caller types markup into a workflow that returns it; the admin opens the run."""
    with world.server.client(world.alice_key) as api:
        ids = []
        for value in XSS_VALUES:
            run = api.post(f"/api/workflows/{workflow}/execute?wait=true", json={"params": {"value": value}})
            assert run.status_code in (200, 201), run.text
            assert run.json()["status"] == "Completed", run.json()
            ids.append(run.json()["execution_id"])
    with logged_in(world, *ADMIN) as admin:
        for execution_id in ids:
            page = admin.get(f"/executions/{execution_id}")
            assert page.status_code == 200
            _no_raw_markup(page.text)
            assert 'href="javascript' not in page.text.lower()
            live = admin.live(f"/executions/{execution_id}/live")  # the result partial of the stream
            _no_raw_markup(live.text)


def test_file_link_escapes_everything_it_links() -> None:
    from app.web.file_links import file_link

    for value in [*XSS_VALUES, 'a"onmouseover=alert(1) b.csv', "uploads/<b>x</b>.csv", "x.csv' onclick='1"]:
        html = str(file_link(value))
        _no_raw_markup(html)
        assert "<b>" not in html and "' onclick" not in html and '"onmouseover' not in html
        if "<a " in html:
            assert html.startswith('<a href="/files/view?') and html.count('"') == 4


def test_a_chat_run_result_with_markup_is_escaped_in_the_conversation(world: World) -> None:
    with world.server.client(world.alice_key) as api:
        conversation = api.post("/api/chat/conversations", json={}).json()["id"]
        turn = api.post(
            f"/api/chat/conversations/{conversation}/messages",
            params={"wait": "true"},
            json={"content": "/run r3_echo value=<img src=x onerror=alert(1)>.csv"},
        )
        assert turn.status_code == 200, turn.text
    with logged_in(world, *ALICE) as alice:
        page = alice.get(f"/chat/{conversation}")
        assert page.status_code == 200
        _no_raw_markup(page.text)


def test_typed_json_is_never_reflected_as_markup(world: World) -> None:
    """Attacker: markup typed into a JSON-object parameter; the error message quotes it escaped."""
    with logged_in(world, *ALICE) as alice:
        for value in ('{"<script>alert(3)</script>": ', "<img src=x onerror=alert(1)>", '["<svg onload=alert(2)>"]'):
            page = alice.post("/workflows/typed/run", {"day": "2026-01-05", "point": value})
            assert page.status_code in (200, 400, 422), page.status_code
            assert "/executions/" not in page.headers.get("location", "")  # nothing ran
            _no_raw_markup(page.text)


def test_the_form_builder_refresh_is_for_admins_and_reflects_nothing(world: World) -> None:
    refresh = {
        "action": "refresh",
        "name": "<script>alert(3)</script>",
        "description": "<img src=x onerror=alert(1)>",
        "workflow_id": "",
        "organization_id": world.org_b,
        "access_level": "role_based",
    }
    with logged_in(world, *ALICE) as alice:
        assert alice.post("/admin/forms/save", refresh).status_code == 403
        assert alice.post("/admin/forms/save", {**refresh, "action": "add"}).status_code == 403
    with logged_in(world, *ADMIN) as admin:
        assert admin.post("/admin/forms/save", refresh, csrf=False).status_code == 403
        page = admin.post("/admin/forms/save", refresh)
        assert page.status_code == 200
        _no_raw_markup(page.text)
        cross = admin.http.post(
            "/admin/forms/save", data={**refresh, "_csrf_token": admin.csrf}, headers={"Origin": EVIL}
        )
        assert cross.status_code == 403


def test_a_technicians_key_cannot_act_in_another_organization_via_the_cache_key(world: World) -> None:
    """The actor cache is keyed by (token, requested org): a requested org never widens what a key may do."""
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_b}) as admin:
        assert admin.post("/api/workflows/whoami/execute?wait=true", json={"params": {}}).status_code in (200, 201)
    for _ in range(2):
        with world.server.client(world.alice_key, **{"X-Bifrost-Org": world.org_b}) as alice:
            run = alice.post("/api/workflows/whoami/execute?wait=true", json={"params": {}})
            if run.status_code in (200, 201):
                assert run.json()["result"]["org_id"] == world.org_a, run.json()
            else:
                assert run.status_code in (401, 403, 404), run.text


def test_digit_like_inputs_do_not_crash_the_new_routes(world: World) -> None:
    with world.server.client(world.alice_key) as api:
        run = api.post("/api/workflows/r3_echo/execute?wait=true", json={"params": {"value": "x"}})
        execution_id = run.json()["execution_id"]
    codes = []
    with logged_in(world, *ALICE) as alice:
        for value in (b"\xb2", b"9" * 5000):
            codes.append(alice.live(f"/executions/{execution_id}/live", headers={"Last-Event-ID": value}).status_code)
    with logged_in(world, *ADMIN) as admin:
        for action in ("up:" + "9" * 5000, "remove:\u00b2"):
            codes.append(admin.post("/admin/forms/save", {"action": action, "name": "x"}).status_code)
    assert all(code < 500 for code in codes), codes


# ----- history filters ---------------------------------------------------------------------------
def test_history_filters_reflect_nothing_and_leak_no_other_organization(world: World) -> None:
    with world.server.client(world.alice_key) as api:
        run = api.post("/api/workflows/r3_echo/execute?wait=true", json={"params": {"value": "alice-private-run"}})
        execution_id = run.json()["execution_id"]
    with logged_in(world, *BOB) as bob:
        for params in (
            {"show": "<script>alert(3)</script>"},
            {"show": "both", "workflow_name": "' OR 1=1 --"},
            {"show": "both", "status": "Completed' OR '1'='1"},
            {"show": "both", "org": world.org_a},
            {"show": "providers"},
        ):
            page = bob.get("/executions", params=params)
            assert page.status_code in (200, 400, 422), (params, page.status_code)
            _no_raw_markup(page.text)
            assert execution_id not in page.text, params
    with world.server.client(world.bob_key) as api:
        listed = api.get("/api/executions", params={"workflow_name": "r3_echo"})
        assert listed.status_code == 200 and listed.json() == []
        other = api.get("/api/executions", headers={"X-Bifrost-Org": world.org_a})
        assert other.status_code in (401, 403, 404) or all(
            e.get("organization_id") != world.org_a for e in other.json()
        )


# ----- revocations through the actor cache (issue 23) ---------------------------------------------
def test_a_revoked_api_key_stops_at_once_on_the_execute_hot_path(world: World) -> None:
    created = world.server.call(lambda: _key_of(world, world.alice_id))
    key_id, key = created
    for _ in range(3):  # warm the cache
        assert _execute(world, key, "r3_policy_target") in (200, 201)
    with world.server.client(world.admin_key) as admin:
        revoked = admin.delete(f"/api/api-keys/{key_id}")
        assert revoked.status_code == 200, revoked.text
    assert _execute(world, key, "r3_policy_target") == 401
    with world.server.client(key) as stolen:
        assert stolen.get("/api/workflows").status_code == 401
        assert stolen.get("/api/executions").status_code == 401


def test_a_deactivated_user_and_their_keys_stop_at_once(world: World) -> None:
    user_id, key = _new_user_key(world, "carol@a.example", world.org_a)
    for _ in range(3):
        assert _execute(world, key, "r3_policy_target") in (200, 201)
    with world.server.client(world.admin_key) as admin:
        response = admin.patch(f"/api/users/{user_id}", json={"is_active": False})
        assert response.status_code == 200, response.text
    assert _execute(world, key, "r3_policy_target") == 401
    assert not _can_login(world, "carol@a.example", "round3-password")


def test_a_deactivated_users_open_session_ends_at_once(world: World) -> None:
    user_id, _ = _new_user_key(world, "hank@a.example", world.org_a)
    with logged_in(world, "hank@a.example", "round3-password") as hank:
        assert hank.get("/files").status_code == 200
        with world.server.client(world.admin_key) as admin:
            assert admin.patch(f"/api/users/{user_id}", json={"is_active": False}).status_code == 200
        assert hank.get("/files").status_code in (303, 401)
        assert _upload(hank, "", "late.txt", b"late").status_code in (303, 401, 403)
        assert hank.get("/files", params={"location": "uploads"}).status_code in (303, 401)
    assert not list(world.server.settings.home.rglob("late.txt"))


def test_a_deactivated_organization_stops_its_keys_at_once(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        org = admin.post("/api/organizations", json={"name": "Org R3", "domain": "r3.example"})
        assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    _, key = _new_user_key(world, "dave@r3.example", org_id)
    for _ in range(3):
        assert _execute(world, key, "r3_policy_target") in (200, 201)
    with world.server.client(world.admin_key) as admin:
        response = admin.patch(f"/api/organizations/{org_id}", json={"is_active": False})
        assert response.status_code == 200, response.text
    assert _execute(world, key, "r3_policy_target") in (401, 403)


def test_an_access_policy_change_takes_effect_at_once(world: World) -> None:
    for _ in range(3):
        assert _execute(world, world.alice_key, "r3_policy_target") in (200, 201)
    with world.server.client(world.admin_key) as admin:
        changed = admin.put("/api/workflows/r3_policy_target/access", json={"access": "admins"})
        assert changed.status_code == 200, changed.text
    try:
        assert _execute(world, world.alice_key, "r3_policy_target") in (403, 404)
    finally:
        with world.server.client(world.admin_key) as admin:
            admin.put("/api/workflows/r3_policy_target/access", json={"access": "everyone"})


def test_a_removed_role_stops_its_workflows_at_once(world: World) -> None:
    headers = {"X-Bifrost-Org": world.org_a}
    with world.server.client(world.admin_key, **headers) as admin:
        role = admin.post("/api/roles", json={"name": "R3Ops"})
        assert role.status_code == 201, role.text
        role_id = _ROLES["R3Ops"] = role.json()["id"]
        assert admin.post(f"/api/roles/{role_id}/users", json={"user_ids": [world.alice_id]}).status_code == 204
    assert _execute(world, world.alice_key, "r3_role_only") in (200, 201)  # caches Alice's role names
    with world.server.client(world.admin_key, **headers) as admin:
        assert admin.delete(f"/api/roles/{role_id}").status_code == 204
    assert _execute(world, world.alice_key, "r3_role_only") in (403, 404)


# ----- live events: another organization's subscriber ---------------------------------------------
def test_another_organization_cannot_follow_a_run_or_a_chat_turn(world: World) -> None:
    with world.server.client(world.alice_key) as api:
        run = api.post("/api/workflows/r3_echo/execute?wait=true", json={"params": {"value": "alice-live-secret"}})
        execution_id = run.json()["execution_id"]
        conversation = api.post("/api/chat/conversations", json={}).json()["id"]
        sent = api.post(
            f"/api/chat/conversations/{conversation}/messages", json={"content": "/run r3_echo value=turn-secret"}
        )
        assert sent.status_code == 202, sent.text
        turn_id = sent.json()["turn_id"]
    with logged_in(world, *BOB) as bob:
        live = bob.get(f"/executions/{execution_id}/live")
        assert live.status_code == 404 and "alice-live-secret" not in live.text
        chat_live = bob.get(f"/chat/turns/{turn_id}/live")
        assert "turn-secret" not in chat_live.text and "r3_echo" not in chat_live.text
        assert bob.get(f"/chat/{conversation}").status_code == 404
    with world.server.client(world.bob_key) as api:
        events = api.get(f"/api/chat/turns/{turn_id}/events")
        assert events.status_code == 404 and "turn-secret" not in events.text
        assert api.get(f"/api/executions/{execution_id}").status_code == 404
        refused = api.post(f"/api/chat/conversations/{conversation}/messages", json={"content": "/run r3_echo"})
        assert refused.status_code == 404
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        assert anonymous.get(f"/api/chat/turns/{turn_id}/events").status_code == 401
        anon_live = anonymous.get(f"/executions/{execution_id}/live")
        assert anon_live.status_code in (303, 401) and "alice-live-secret" not in anon_live.text


# ----- sign-in throttle against a forged forwarded address ----------------------------------------
@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = LiveServer(make_settings(tmp_path_factory.mktemp("r3-throttle"), login_rate_limit_per_minute=4)).start()
    try:
        yield World(server=server, **server.call(lambda: seed(server.platform)))
    finally:
        server.stop()


def test_a_password_guesser_cannot_reset_the_throttle_with_x_forwarded_for(throttled: World) -> None:
    codes = []
    with httpx.Client(base_url=throttled.server.url, timeout=30) as client:
        for attempt in range(8):
            forged = {"X-Forwarded-For": f"10.0.0.{attempt}", "X-Real-IP": f"10.0.1.{attempt}"}
            response = client.post(
                "/api/auth/login", json={"email": "alice@a.example", "password": f"guess-{attempt}"}, headers=forged
            )
            codes.append(response.status_code)
    assert 429 in codes, codes
    assert codes.count(401) <= 4, codes


def test_a_deactivated_role_is_refused_at_once(world: World) -> None:
    """PATCH is_active=false (not only DELETE) drops the cached role names at once."""
    headers = {"X-Bifrost-Org": world.org_a}
    with world.server.client(world.admin_key, **headers) as admin:
        role = admin.post("/api/roles", json={"name": "R3Ops"})
        role_id = role.json()["id"] if role.status_code == 201 else None
        if role_id is None:  # made (and deleted) by the test above: reactivate it
            role_id = _ROLES["R3Ops"]
            assert admin.patch(f"/api/roles/{role_id}", json={"is_active": True}).status_code == 200
        assert admin.post(f"/api/roles/{role_id}/users", json={"user_ids": [world.alice_id]}).status_code == 204
    assert _execute(world, world.alice_key, "r3_role_only") in (200, 201)  # reactivated: runs at once too
    with world.server.client(world.admin_key, **headers) as admin:
        assert admin.patch(f"/api/roles/{role_id}", json={"is_active": False}).status_code == 200
    assert _execute(world, world.alice_key, "r3_role_only") in (403, 404)


# ----- the cluster event bus: what a caller's text can do to the shared channel -------------------
class _FakeBus:
    """A channels backend that records what is published and loops it back to a second hub."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def on_startup(self) -> None:
        return None

    async def on_shutdown(self) -> None:
        return None

    async def subscribe(self, channels: Any) -> None:
        return None

    async def unsubscribe(self, channels: Any) -> None:
        return None

    async def publish(self, data: bytes, channels: Any) -> None:
        self.published.append(data)

    async def stream_events(self) -> Any:
        import asyncio

        while True:
            await asyncio.sleep(3600)
            yield "", b""


def test_a_log_line_cannot_forge_another_runs_event_on_the_bus() -> None:
    """Attacker: a workflow prints a line shaped like a bus record for another organization's run."""
    import asyncio

    from app.engine.events import EventHub

    async def scenario() -> tuple[list[Any], list[Any]]:
        bus = _FakeBus()
        sender, receiver = EventHub(bus), EventHub(bus)  # type: ignore[arg-type]
        await sender.start()
        victim = receiver.subscribe("victim-run")
        mine = receiver.subscribe("my-run")
        forged = 'x"}\nvictim-run\t{"type": "status", "status": "Completed"}\n\u2028victim-run\t{}'
        sender.publish("my-run", {"type": "log", "message": forged})
        sender.publish("my-run", {"type": "log", "message": "z" * 20_000 + '\nvictim-run\t{"type":"done"}'})
        for _ in range(50):
            if len(bus.published) >= 2:
                break
            await asyncio.sleep(0.02)
        await sender.stop(0.5)
        for payload in bus.published:
            receiver.receive(payload)
        return [victim.get_nowait() for _ in range(victim.qsize())], [mine.get_nowait() for _ in range(mine.qsize())]

    victim_events, my_events = asyncio.run(scenario())
    assert victim_events == []
    assert [e["message"][:3] for e in my_events] == ['x"}', "zzz"]


SURROGATE_CASES = """
from bifrost import workflow


@workflow
async def r3_surrogate() -> str:
    print("before", chr(0xD800), "after")
    return "printed"


@workflow
async def r3_surrogate_error() -> str:
    from bifrost.errors import UserError

    raise UserError("refused: " + chr(0xD800))


@workflow
async def r3_plain() -> str:
    print("a plain line")
    return "printed"
"""


@pytest.fixture(scope="module")
def bussed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, _FakeBus]]:
    """A live server whose event hub shares events through a (recording) bus, as with several servers."""
    from app.engine.event_backends import unwire_cache_invalidation, wire_cache_invalidation

    tmp = tmp_path_factory.mktemp("r3-bus")
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "round3_bus_cases.py").write_text(SURROGATE_CASES)
    server = LiveServer(make_settings(tmp, workspace=workspace)).start()
    bus = _FakeBus()

    async def distribute() -> None:
        hub = server.platform.hub
        hub.backend = bus
        await hub.start()
        wire_cache_invalidation(hub)

    try:
        w = World(server=server, **server.call(lambda: seed(server.platform)))
        server.call(distribute)
        yield w, bus
    finally:
        unwire_cache_invalidation(server.platform.hub)
        server.stop()


def _revoke_and_wait_for_broadcast(world: World, bus: _FakeBus) -> bool:
    import time

    key_id, _ = world.server.call(lambda: _key_of(world, world.alice_id))
    before = len(bus.published)
    with world.server.client(world.admin_key) as admin:
        assert admin.delete(f"/api/api-keys/{key_id}").status_code == 200
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if any(b"#cache" in p and b"actors" in p for p in bus.published[before:]):
            return True
        time.sleep(0.05)
    return False


def test_the_bus_carries_a_revocation_after_an_ordinary_run(bussed: tuple[World, _FakeBus]) -> None:
    """Control for the next test: a revocation is broadcast to the other servers, also after a run whose
    printed line holds a lone surrogate (the log path replaces it)."""
    world, bus = bussed
    with world.server.client(world.admin_key) as admin:
        for name in ("r3_plain", "r3_surrogate"):
            run = admin.post(f"/api/workflows/{name}/execute?wait=true", json={"params": {}})
            assert run.json()["status"] == "Completed", run.text
    assert _revoke_and_wait_for_broadcast(world, bus)


def test_a_workflow_failing_with_a_lone_surrogate_does_not_silence_the_bus(bussed: tuple[World, _FakeBus]) -> None:
    world, bus = bussed
    with world.server.client(world.admin_key) as admin:
        failed = admin.post("/api/workflows/r3_surrogate_error/execute?wait=true", json={"params": {}})
        assert failed.status_code == 200 and failed.json()["status"] == "Failed", failed.text
    assert _revoke_and_wait_for_broadcast(world, bus)


def test_a_result_holding_a_lone_surrogate_is_stored_and_shown(world: World) -> None:
    """Attacker: a workflow returns text no UTF-8 encoder accepts (an undecodable file name, say)."""
    with world.server.client(world.alice_key) as api:
        run = api.post("/api/workflows/r3_surrogate_result/execute", json={"params": {}})
        assert run.status_code in (200, 201, 202), run.text
        execution_id = run.json()["execution_id"]
        import time

        time.sleep(3)
        codes = {
            "wait": api.post("/api/workflows/r3_surrogate_result/execute?wait=true", json={"params": {}}).status_code,
            "get": api.get(f"/api/executions/{execution_id}").status_code,
            "list": api.get("/api/executions").status_code,
        }
    with logged_in(world, *ALICE) as alice:
        codes["page"] = alice.get(f"/executions/{execution_id}").status_code
        codes["history"] = alice.get("/executions").status_code
        codes["home"] = alice.get("/").status_code
    assert all(code < 500 for code in codes.values()), codes


def test_the_queue_done_message_survives_a_result_with_a_lone_surrogate() -> None:
    from app.engine.queue_schema import done_payload, parse_done

    outcome = {
        "status": "Completed",
        "result": {"value": "odd \ud800 name"},
        "error_message": None,
        "error_type": None,
        "error_traceback": None,
        "user_error": False,
        "started_at": None,
        "completed_at": None,
        "duration_ms": 1,
    }
    payload = done_payload("e1", outcome)
    assert parse_done(payload)[0] == "e1"
    payload.encode()
