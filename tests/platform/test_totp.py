"""Two-factor sign-in with TOTP over real HTTP (issue 22): enrolment, the code step, recovery codes,
the policy, an admin's reset, the rate limit; API keys unaffected."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest

from tests.conftest import LiveServer, make_settings
from tests.platform.conftest import World, seed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("totp"), workers=1, login_rate_limit_per_minute=10_000)
    server = LiveServer(settings).start()
    try:
        yield World(server=server, **server.call(lambda: seed(server.platform)))
    finally:
        server.stop()


def new_user(world: World, password: str = "user-password-1") -> dict[str, Any]:
    email = f"u-{uuid.uuid4().hex[:8]}@a.example"
    with world.server.client(world.admin_key) as admin:
        body = {"email": email, "name": "Tess", "org_id": world.org_a, "password": password}
        response = admin.post("/api/users", json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), "email": email, "password": password}


def browser(world: World) -> httpx.Client:
    client = httpx.Client(base_url=world.server.url, timeout=30)
    client.get("/login")
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


def login(client: httpx.Client, user: dict[str, Any]) -> httpx.Response:
    return client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})


def next_code(secret: str, steps_ahead: int = 1) -> str:
    """The code of a coming time step (the current one may already be spent; one step ahead is accepted)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def enrol(world: World, user: dict[str, Any]) -> tuple[str, list[str]]:
    """Sign in with the password, enrol through the API; returns the secret and the recovery codes."""
    client = browser(world)
    assert login(client, user).json()["user_id"] == user["id"]
    started = client.post("/api/auth/totp/enrolment")
    assert started.status_code == 201, started.text
    enrolment = started.json()
    assert enrolment["qr_svg"].startswith("data:image/svg+xml")
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/") and enrolment["secret"] in enrolment["otpauth_uri"]
    wrong = client.post("/api/auth/totp/enrolment/confirm", json={"code": "000000"})
    assert wrong.status_code == 422 and "code" in wrong.text
    confirmed = client.post("/api/auth/totp/enrolment/confirm", json={"code": pyotp.TOTP(enrolment["secret"]).now()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status = client.get("/api/auth/totp").json()
    assert status["enabled"] and status["recovery_codes_left"] == 10
    return enrolment["secret"], codes


def test_enrol_then_sign_in_with_a_code(world: World) -> None:
    user = new_user(world)
    secret, _ = enrol(world, user)
    client = browser(world)
    pending = login(client, user)
    # The password alone starts no session.
    assert pending.status_code == 200 and pending.json()["second_factor"] == "totp"
    assert client.get("/api/auth/me").status_code == 401
    wrong = client.post("/api/auth/totp", json={"code": "123456"})
    assert wrong.status_code == 401 and "Wrong" in wrong.json()["detail"]
    assert client.get("/api/auth/me").status_code == 401
    code = next_code(secret)
    done = client.post("/api/auth/totp", json={"code": code})
    assert done.status_code == 200 and done.json()["email"] == user["email"]
    assert client.get("/api/auth/me").json()["user_id"] == user["id"]
    # The same code never works twice.
    again = browser(world)
    assert login(again, user).json()["second_factor"] == "totp"
    assert again.post("/api/auth/totp", json={"code": code}).status_code == 401
    with world.server.client(world.admin_key) as admin:
        events = admin.get("/api/audit", params={"actor": user["email"], "limit": 20}).json()["events"]
    methods = [(e["action"], e["details"].get("method")) for e in events]
    assert ("auth.login_succeeded", "password+totp") in methods
    assert ("auth.login_failed", "password+totp") in methods
    assert ("user.totp_enabled", None) in methods


def test_the_code_step_on_the_login_page(world: World) -> None:
    user = new_user(world)
    secret, _ = enrol(world, user)
    client = httpx.Client(base_url=world.server.url, timeout=30)
    client.get("/login")
    form = {"_csrf_token": client.cookies["csrftoken"], "email": user["email"], "password": user["password"]}
    first = client.post("/login", data={**form, "next": "/executions"})
    assert first.status_code == 303 and first.headers["location"] == "/login/totp"
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    page = client.get("/login/totp")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    token = {"_csrf_token": client.cookies["csrftoken"]}
    shown = client.post("/login/totp", data={**token, "code": "999999"})
    assert shown.status_code == 200 and "Wrong or already used code" in shown.text
    done = client.post("/login/totp", data={**token, "code": next_code(secret)})
    assert done.status_code == 303 and done.headers["location"] == "/executions"
    assert client.get("/api/auth/me").json()["email"] == user["email"]
    # No pending sign-in: the form sends the browser back to the login page.
    stranger = httpx.Client(base_url=world.server.url, timeout=30)
    assert stranger.get("/login/totp").headers["location"] == "/login"


def test_a_recovery_code_works_once(world: World) -> None:
    user = new_user(world)
    _, codes = enrol(world, user)
    client = browser(world)
    login(client, user)
    used = client.post("/api/auth/totp", json={"recovery_code": codes[3].lower().replace("-", " ")})
    assert used.status_code == 200 and client.get("/api/auth/me").status_code == 200
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    assert client.get("/api/auth/totp").json()["recovery_codes_left"] == 9
    second = browser(world)
    login(second, user)
    reused = second.post("/api/auth/totp", json={"recovery_code": codes[3]})
    assert reused.status_code == 401 and "already used" in reused.json()["detail"]
    assert second.get("/api/auth/me").status_code == 401
    assert second.post("/api/auth/totp", json={"recovery_code": codes[4]}).status_code == 200


def test_wrong_codes_pause_the_user_and_the_step_needs_a_password_first(world: World) -> None:
    user = new_user(world)
    secret, _ = enrol(world, user)
    client = browser(world)
    # No password first: nothing is waiting for a code.
    nothing = client.post("/api/auth/totp", json={"code": next_code(secret)})
    assert nothing.status_code == 401 and "enter your password" in nothing.json()["detail"]
    login(client, user)
    for _ in range(5):
        assert client.post("/api/auth/totp", json={"code": "000000"}).status_code == 401
    paused = client.post("/api/auth/totp", json={"code": next_code(secret)})
    assert paused.status_code == 401 and "Too many wrong codes" in paused.json()["detail"]
    assert client.get("/api/auth/me").status_code == 401


def test_policy_requires_enrolment_and_admins_reset_a_factor(world: World) -> None:
    user = new_user(world)
    with world.server.client(world.admin_key) as admin:
        assert admin.put("/api/sign-in/policy", json={"require_totp": "sometimes"}).status_code == 422
        assert admin.put("/api/sign-in/policy", json={"require_totp": "everyone"}).json()["require_totp"] == "everyone"
    try:
        client = httpx.Client(base_url=world.server.url, timeout=30)
        client.get("/login")
        form = {"_csrf_token": client.cookies["csrftoken"], "email": user["email"], "password": user["password"]}
        first = client.post("/login", data=form)
        assert first.status_code == 303 and first.headers["location"] == "/login/totp/enrol"
        page = client.get("/login/totp/enrol")
        assert page.status_code == 200 and 'src="data:image/svg+xml' in page.text
        secret = page.text.split('id="totp-secret">', 1)[1].split("<", 1)[0]
        assert client.get("/api/auth/me").status_code == 401
        confirm = {"_csrf_token": client.cookies["csrftoken"], "code": pyotp.TOTP(secret).now()}
        done = client.post("/login/totp/enrol", data=confirm)
        assert done.status_code == 200 and 'id="recovery-codes"' in done.text
        assert client.get("/api/auth/me").json()["email"] == user["email"]
        # The JSON login of a user who must enrol says so and starts nothing.
        other = new_user(world)
        fresh = browser(world)
        assert login(fresh, other).json()["second_factor"] == "enrol"
        assert fresh.get("/api/auth/me").status_code == 401
    finally:
        with world.server.client(world.admin_key) as admin:
            admin.put("/api/sign-in/policy", json={"require_totp": "none"})
    with world.server.client(world.alice_key) as alice:
        assert alice.delete(f"/api/sign-in/users/{user['id']}/totp").status_code == 403
    with world.server.client(world.admin_key) as admin:
        assert admin.delete(f"/api/sign-in/users/{user['id']}/totp").json() == {"reset": True}
        assert admin.delete(f"/api/sign-in/users/{user['id']}/totp").json() == {"reset": False}
    client = browser(world)
    assert login(client, user).json()["user_id"] == user["id"]  # password alone again


def test_api_keys_are_unaffected_and_cannot_change_factors(world: World) -> None:
    # Alice (seeded, with an API key) turns two-factor sign-in on.
    alice = {"id": world.alice_id, "email": "alice@a.example", "password": "alice-password"}
    enrol(world, alice)
    try:
        with world.server.client(world.alice_key) as key:
            assert key.get("/api/auth/me").status_code == 200
            refused = key.post("/api/auth/totp/enrolment")
            assert refused.status_code == 403 and "API key" in refused.text
    finally:
        with world.server.client(world.admin_key) as admin:
            admin.delete(f"/api/sign-in/users/{world.alice_id}/totp")


def test_the_code_step_is_rate_limited_like_the_password(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = make_settings(tmp_path_factory.mktemp("totp-limit"), workers=1, login_rate_limit_per_minute=4)
    server = LiveServer(settings).start()
    try:
        with server.client() as client:
            statuses = [client.post("/api/auth/totp", json={"code": "000000"}).status_code for _ in range(6)]
        assert statuses[:4] == [401] * 4 and statuses[4:] == [429, 429]
    finally:
        server.stop()


def test_the_account_page_enrols_and_turns_it_off(world: World) -> None:
    user = new_user(world)
    client = httpx.Client(base_url=world.server.url, timeout=30)
    client.get("/login")
    token = {"_csrf_token": client.cookies["csrftoken"]}
    assert (
        client.post("/login", data={**token, "email": user["email"], "password": user["password"]}).status_code == 303
    )
    assert "is <strong>off</strong>" in client.get("/account/security").text
    started = client.post("/account/security/totp", data=token)
    assert started.status_code == 200 and 'src="data:image/svg+xml' in started.text
    secret = started.text.split('id="totp-secret">', 1)[1].split("<", 1)[0]
    wrong = client.post("/account/security/totp/confirm", data={**token, "code": "000000"})
    assert wrong.status_code == 200 and "is not the current code" in wrong.text
    assert f'id="totp-secret">{secret}<' in wrong.text  # the same secret, scanned once
    done = client.post("/account/security/totp/confirm", data={**token, "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200 and done.text.count("<li><code>") == 10
    assert "is <strong>on</strong>" in client.get("/account/security").text
    refused = client.post("/account/security/totp/disable", data={**token, "code": "000000"})
    assert refused.status_code == 200 and "Wrong or already used code" in refused.text
    off = client.post("/account/security/totp/disable", data={**token, "code": next_code(secret)})
    assert off.status_code == 303
    assert "is <strong>off</strong>" in client.get("/account/security").text
    assert login(browser(world), user).json()["user_id"] == user["id"]
