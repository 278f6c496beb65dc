"""The integration pages in a real browser: define, map, Connect → provider consent → connected (or refused)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World


@pytest.fixture
def consent_provider() -> Iterator[FakeOAuthProvider]:
    """A fake provider that shows a consent page (Allow / Deny) instead of approving at once."""
    with FakeOAuthProvider(auto_approve=False) as fake:
        yield fake


def login(page: Any, world: World) -> None:
    page.goto(f"{world.server.url}/login")
    page.fill("#email", "admin@test.io")
    page.fill("#password", "admin-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.server.url}/")


def test_define_map_and_connect_in_the_browser(world: World, page: Any, consent_provider: FakeOAuthProvider) -> None:
    provider = consent_provider
    login(page, world)
    page.click("#admin-menu summary")  # admin pages are in the top bar's Admin menu
    page.click("nav >> text=Integrations")
    page.wait_for_url("**/integrations")
    page.fill("#new-name", "Fake_Graph")
    page.fill("#new-description", "The fake provider")
    page.select_option("#new-flow", "authorization_code")
    page.fill("#new-authorization-url", f"{provider.url}/{{entity_id}}/authorize")
    page.fill("#new-token-url", f"{provider.url}/{{entity_id}}/token")
    page.fill("#new-client-id", provider.client_id)
    page.fill("#new-client-secret", provider.client_secret)
    page.fill("#new-scopes", "offline_access read")
    schema = [{"key": "api_base", "type": "string"}, {"key": "api_secret", "type": "string", "secret": True}]
    page.fill("#new-schema", json.dumps(schema))
    page.click("#new-integration-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"))
    assert "created" in page.inner_text("#notice")
    assert page.inner_text("#redirect-uri") == f"{world.server.url}/integrations/oauth/callback"

    # map Org A with its tenant id and values, then Org B
    page.select_option("#new-org", label="Org A")
    page.fill("#new-entity-id", "tenant-a")
    page.fill("#new-entity-name", "Contoso")
    page.fill("#new-cfg-1", provider.url)
    page.fill("#new-cfg-2", "org-a-secret")
    page.click("#new-mapping-form button[type=submit]")
    page.wait_for_selector("article.mapping[data-org='Org A']")
    assert "Mapping for Org A saved" in page.inner_text("#notice")
    page.select_option("#new-org", label="Org B")
    page.fill("#new-entity-id", "tenant-b")
    page.click("#new-mapping-form button[type=submit]")
    page.wait_for_selector("article.mapping[data-org='Org B']")
    org_a = page.locator("article.mapping[data-org='Org A']")
    assert org_a.locator(".connection").get_attribute("data-status") == "not-connected"

    # Connect → the provider's consent page → Allow → back, connected
    org_a.locator("button.connect").click()
    page.wait_for_url(re.compile(re.escape(provider.url) + r"/tenant-a/authorize\?.*"))
    assert "Allow Bifrost to access offline_access read" in page.inner_text("body")
    page.click("button[value=allow]")
    page.wait_for_url(re.compile(r".*/integrations/[0-9a-f-]{36}$"))
    assert "connected for Org A" in page.inner_text("#notice")
    org_a = page.locator("article.mapping[data-org='Org A']")
    assert org_a.locator(".connection").get_attribute("data-status") == "connected"
    assert org_a.locator(".scopes").inner_text().split() == ["offline_access", "read"]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", org_a.locator(".expires").inner_text())
    assert provider.count("authorization_code") == 1 and provider.token_requests[-1].tenant == "tenant-a"
    # the secret value is masked on the page, never shown
    assert "org-a-secret" not in page.content()

    # Org B: the person denies consent → a clear message, nothing stored
    page.locator("article.mapping[data-org='Org B'] button.connect").click()
    page.wait_for_url(re.compile(re.escape(provider.url) + r"/tenant-b/authorize\?.*"))
    page.click("button[value=deny]")
    page.wait_for_selector("#callback-error")
    assert "access_denied" in page.inner_text("#callback-error")
    page.click("text=Back to the integrations")
    page.click("text=Fake_Graph")
    org_b = page.locator("article.mapping[data-org='Org B']")
    assert org_b.locator(".connection").get_attribute("data-status") == "not-connected"

    # refresh now, from the page
    page.locator("article.mapping[data-org='Org A'] >> text=Refresh now").click()
    page.wait_for_selector("#notice")
    assert "Token refreshed" in page.inner_text("#notice") and provider.count("refresh_token") == 1
    # the only failed request: the refused callback, whose page answers 400 on purpose
    assert [e for e in page.console_errors if "400 (Bad Request)" not in e] == []
    assert len(page.console_errors) == 1
