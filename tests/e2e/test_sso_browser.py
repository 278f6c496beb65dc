"""Single sign-on and two-factor sign-in in Chromium (issue 22): through the identity provider's own page,
the admin page, and enrolment with the QR code rendered on the server; no console error (CSP included)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.fakes.oidc_provider import FakeOidcProvider
from tests.platform.conftest import World


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider() as provider:
        yield provider


def test_sign_in_through_the_providers_page(world: World, fake: FakeOidcProvider, page: Any) -> None:
    body = {
        "slug": "fake-idp",
        "display_name": "Contoso IdP",
        "kind": "oidc",
        "issuer": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
    }
    with world.server.client(world.admin_key) as admin:
        assert admin.post("/api/sign-in/providers", json=body).status_code == 201
    fake.person("alice@a.example", name="Alice")

    page.goto(f"{world.server.url}/executions")
    assert "/login" in page.url
    page.click("#sso-fake-idp")
    page.wait_for_url(f"{fake.url}/authorize?*")
    assert "Fake identity provider" in page.inner_text("h1")
    page.fill("#login", "alice@a.example")
    page.click("text=Sign in")
    page.wait_for_url(f"{world.server.url}/executions")
    assert "Alice (alice@a.example)" in page.inner_text("header")
    assert page.console_errors == []

    # Someone the install does not know: back on the login page with the reason.
    page.click("text=Log out")
    page.wait_for_url(f"{world.server.url}/login")
    page.click("#sso-fake-idp")
    page.fill("#login", "stranger@nowhere.example")
    page.click("text=Sign in")
    page.wait_for_url(f"{world.server.url}/login/sso/callback*")
    assert "There is no account for stranger@nowhere.example" in page.inner_text("[role=alert]")
    assert page.console_errors == []


def test_admin_page_and_enrolment_with_the_qr_code(world: World, page: Any) -> None:
    page.goto(f"{world.server.url}/login")
    page.fill("#email", "admin@test.io")
    page.fill("#password", "admin-password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")

    page.goto(f"{world.server.url}/admin/sign-in")
    assert "/login/sso/callback" in page.inner_text("#callback-url")
    page.select_option("#require-totp", "admins")
    page.click("#save-policy")
    assert "Two-factor policy saved" in page.inner_text("main")
    assert page.console_errors == []

    # The admin must enrol at the next password sign-in: the QR code is an image the page may show (CSP).
    page.click("text=Log out")
    page.fill("#email", "admin@test.io")
    page.fill("#password", "admin-password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{world.server.url}/login/totp/enrol")
    assert page.evaluate("document.querySelector('img.totp-qr').naturalWidth") > 0
    secret = page.inner_text("#totp-secret")
    page.fill("#enrol-code", pyotp.TOTP(secret).now())
    page.click("text=Turn on two-factor sign-in")
    assert len(page.query_selector_all("#recovery-codes li")) == 10
    page.click("text=Continue")
    page.wait_for_url(f"{world.server.url}/")

    # And the code step at the next sign-in.
    page.click("text=Log out")
    page.fill("#email", "admin@test.io")
    page.fill("#password", "admin-password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{world.server.url}/login/totp")
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("text=Verify")
    page.wait_for_url(f"{world.server.url}/")
    assert "platform admin" in page.inner_text("header")
    page.goto(f"{world.server.url}/account/security")
    assert "on" in page.inner_text("#totp-status")
    assert page.console_errors == []
    with world.server.client(world.admin_key) as admin:
        admin.put("/api/sign-in/policy", json={"require_totp": "none"})
        admin.delete(f"/api/sign-in/users/{world.admin_id}/totp")
