"""Passwords in the web UI (issue 19): the Account page and an admin's reset, over HTTP on a live server.

Alice (Org A) changes her own password; the admin resets Bob's. Sessions end as the API's password
change ends them, every refusal names the field, attempts are audited, and the change is throttled
like the login form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed
from tests.platform.pages_support import logged_in, start_pages_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_pages_world(tmp_path_factory.mktemp("account-page"))
    try:
        yield w
    finally:
        w.server.stop()


def _login(world: World, email: str, password: str) -> int:
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        client.get("/login")
        form = {"email": email, "password": password, "next": "/", "_csrf_token": client.cookies["csrftoken"]}
        return client.post("/login", data=form).status_code


def _audit(world: World, action: str) -> list[dict[str, object]]:
    with world.server.client(world.admin_key) as api:
        return api.get("/api/audit", params={"action": action}).json()["events"]  # type: ignore[no-any-return]


def test_a_user_changes_their_password_and_their_other_sessions_end(world: World) -> None:
    with (
        logged_in(world, "alice@a.example", "alice-password") as phone,
        logged_in(world, "alice@a.example", "alice-password") as laptop,
    ):
        page = laptop.get("/account")
        assert page.status_code == 200 and "alice@a.example" in page.text and "Org A" in page.text
        assert page.headers["cache-control"] == "no-store"
        changed = laptop.post(
            "/account/password",
            {
                "current_password": "alice-password",
                "new_password": "alice-new-pass",
                "confirm_password": "alice-new-pass",
            },
        )
        assert changed.status_code == 303 and changed.headers["location"] == "/account"
        # This browser stays signed in; the other one is signed out.
        assert "Password changed" in laptop.get("/account").text
        assert phone.get("/account").status_code == 303
    assert _login(world, "alice@a.example", "alice-password") == 200  # the login page again, with the error
    assert _login(world, "alice@a.example", "alice-new-pass") == 303
    events = [e for e in _audit(world, "user.updated") if e["target_id"] == world.alice_id]
    assert events and events[0]["details"] == {"fields": ["password"], "by": "self", "sessions_ended": True}
    assert "alice-new-pass" not in str(events)
    with logged_in(world, "alice@a.example", "alice-new-pass") as alice:  # back, for the other tests
        form = {"current_password": "alice-new-pass", "new_password": "alice-password"}
        assert alice.post("/account/password", {**form, "confirm_password": "alice-password"}).status_code == 303


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"current_password": "wrong-password", "new_password": "bob-next-pass"}, "current_password", "is not your"),
        ({"current_password": "bob-password", "new_password": "short"}, "new_password", "at least 8"),
        ({"current_password": "bob-password", "new_password": "bob-password"}, "new_password", "must differ"),
        (
            {"current_password": "bob-password", "new_password": "bob-next-pass", "confirm_password": "other-pass"},
            "confirm_password",
            "does not match",
        ),
        ({}, "current_password", "is not your"),
    ],
)
def test_a_refused_change_names_the_field_and_changes_nothing(
    world: World, form: dict[str, str], field: str, message: str
) -> None:
    form = {"confirm_password": form.get("new_password", ""), **form}
    with logged_in(world, "bob@b.example", "bob-password") as bob:
        refused = bob.post("/account/password", form)
        assert refused.status_code == 422, refused.text
        assert f'id="err-{field}"' in refused.text and message in refused.text
        assert bob.get("/account").status_code == 200  # still signed in
    assert _login(world, "bob@b.example", "bob-password") == 303


def test_a_wrong_current_password_is_audited_as_a_failed_sign_in(world: World) -> None:
    with logged_in(world, "bob@b.example", "bob-password") as bob:
        bob.post(
            "/account/password",
            {"current_password": "guess-1234", "new_password": "x" * 10, "confirm_password": "x" * 10},
        )
    failed = [e for e in _audit(world, "auth.login_failed") if e.get("actor_id") == world.bob_id]
    assert failed and failed[0]["details"]["method"] == "password_change"  # type: ignore[index]


def test_the_change_needs_the_csrf_token_and_a_session(world: World) -> None:
    with logged_in(world, "bob@b.example", "bob-password") as bob:
        form = {"current_password": "bob-password", "new_password": "forged-pass", "confirm_password": "forged-pass"}
        assert bob.post("/account/password", form, csrf=False).status_code == 403
    with httpx.Client(base_url=world.server.url, timeout=30) as anonymous:
        assert anonymous.get("/account").headers["location"].startswith("/login")
        anonymous.get("/login")
        posted = anonymous.post("/account/password", data={**form, "_csrf_token": anonymous.cookies["csrftoken"]})
        assert posted.status_code in (303, 401)
    assert _login(world, "bob@b.example", "bob-password") == 303


def test_an_oversized_change_is_refused_before_it_is_read(world: World) -> None:
    with logged_in(world, "bob@b.example", "bob-password") as bob:
        huge = bob.post("/account/password", {"current_password": "x" * (5 * 1024 * 1024)})
    assert huge.status_code == 413


def test_password_changes_are_throttled_like_logins(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = LiveServer(make_settings(tmp_path_factory.mktemp("throttle"), login_rate_limit_per_minute=4)).start()
    try:
        w = World(server=server, **server.call(lambda: seed(server.platform)))
        with logged_in(w, "alice@a.example", "alice-password") as alice:  # one attempt used by the login
            codes = [
                alice.post("/account/password", {"current_password": f"guess-{n}", "new_password": "n" * 9}).status_code
                for n in range(6)
            ]
    finally:
        server.stop()
    assert codes[:3] == [422, 422, 422] and 429 in codes[3:], codes


# ----- an admin resets someone's password ------------------------------------------------------------
def test_an_admin_resets_a_password_with_a_generated_one_shown_once(world: World) -> None:
    with logged_in(world, "bob@b.example", "bob-password") as bob_session:
        with logged_in(world, "admin@test.io", "admin-password") as admin:
            assert f"/admin/users/{world.bob_id}/password" in admin.get("/admin/users").text
            form = admin.get(f"/admin/users/{world.bob_id}/password")
            assert form.status_code == 200 and "bob@b.example" in form.text
            shown = admin.post(f"/admin/users/{world.bob_id}/password", {})
            assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
            generated = re.search(r'id="generated-password">([^<]+)<', shown.text)
            assert generated and len(generated.group(1)) >= 16
            assert generated.group(1) not in admin.get("/admin/users").text  # never again
        assert bob_session.get("/account").status_code == 303  # Bob's session ended
    assert _login(world, "bob@b.example", "bob-password") == 200
    assert _login(world, "bob@b.example", generated.group(1)) == 303
    # Put Bob's password back for the other tests (the admin chooses one this time).
    with logged_in(world, "admin@test.io", "admin-password") as admin:
        chosen = {"new_password": "bob-password", "confirm_password": "bob-password"}
        back = admin.post(f"/admin/users/{world.bob_id}/password", chosen)
        assert back.status_code == 303 and "Password of bob@b.example set" in admin.get("/admin/users").text
    assert _login(world, "bob@b.example", "bob-password") == 303
    events = [e for e in _audit(world, "user.updated") if e["target_id"] == world.bob_id]
    assert len(events) >= 2 and all(e["details"]["fields"] == ["password"] for e in events)  # type: ignore[index]


def test_only_platform_admins_reset_and_not_their_own_password(world: World) -> None:
    with logged_in(world, "alice@a.example", "alice-password") as alice:
        assert alice.get(f"/admin/users/{world.bob_id}/password").status_code == 403
        assert alice.post(f"/admin/users/{world.bob_id}/password", {"new_password": "taken-over"}).status_code == 403
    with logged_in(world, "admin@test.io", "admin-password") as admin:
        own = admin.post(f"/admin/users/{world.admin_id}/password", {})
        assert own.status_code == 422 and "Account page" in own.text
        mismatch = admin.post(
            f"/admin/users/{world.bob_id}/password", {"new_password": "bob-next-pass", "confirm_password": "nope"}
        )
        assert mismatch.status_code == 422 and "does not match" in mismatch.text
        assert admin.post("/admin/users/no-such-user/password", {}).status_code == 404
        assert admin.post(f"/admin/users/{world.bob_id}/password", {}, csrf=False).status_code == 403
    assert _login(world, "bob@b.example", "bob-password") == 303
