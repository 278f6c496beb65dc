"""The integration pages over HTTP: forms, errors shown next to what caused them, admins only."""

from __future__ import annotations

import json
import re

from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World, browser_session
from tests.platform.integrations_support import mapping, provider

__all__ = ["provider"]  # the fixture, imported for pytest

SCHEMA = [
    {"key": "page_size", "type": "int"},
    {"key": "verbose", "type": "bool"},
    {"key": "api_secret", "type": "string", "secret": True},
]


def _create(browser, provider: FakeOAuthProvider, name: str, **fields: str):  # type: ignore[no-untyped-def]
    form = {
        "name": name,
        "oauth_flow": "client_credentials",
        "token_url": f"{provider.url}/token",
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "token_auth_method": "client_secret_basic",
        "scopes": "read",
        "config_schema": json.dumps(SCHEMA),
        **fields,
    }
    return browser.post("/integrations", data=form, follow_redirects=False)


def test_only_platform_admins_see_the_pages(world: World) -> None:
    with browser_session(world, "alice@a.example", "alice-password") as alice:
        response = alice.get("/integrations")
        assert response.status_code == 403 and "Only platform admins may manage integrations" in response.text
    with browser_session(world) as admin:
        page = admin.get("/integrations")
        assert page.status_code == 200 and "/integrations/oauth/callback" in page.text
        assert 'href="/integrations"' in page.text  # the nav link


def test_create_map_and_connect_through_the_forms(world: World, provider: FakeOAuthProvider) -> None:
    with browser_session(world) as admin:
        bad = _create(admin, provider, "Pages_Bad", config_schema="[{not json")
        assert bad.status_code == 422 and "config_schema: is not valid JSON" in bad.text
        assert 'value="Pages_Bad"' in bad.text  # the form keeps what was typed
        created = _create(admin, provider, "Pages_CC")
        assert created.status_code == 303
        location = created.headers["location"]
        integration_id = location.rsplit("/", 1)[1]
        assert re.fullmatch(r"[0-9a-f-]{36}", integration_id)
        # defaults: typed from the form, secrets encrypted and then shown masked only
        saved = admin.post(
            f"{location}/defaults",
            data={"config.page_size": "25", "config.verbose": "true", "config.api_secret": "default-s3cret"},
            follow_redirects=False,
        )
        assert saved.status_code == 303
        page = admin.get(location).text
        assert "default-s3cret" not in page and "stored (leave empty to keep)" in page
        # a mapping with a bad number is refused next to the form, nothing saved
        refused = admin.post(
            f"{location}/mappings",
            data={"new": "1", "org_id": world.org_a, "config.page_size": "ten"},
            follow_redirects=False,
        )
        assert refused.status_code == 422 and "config.page_size: must be a whole number" in refused.text
        ok = admin.post(
            f"{location}/mappings",
            data={"org_id": world.org_a, "entity_id": "t-1", "entity_name": "Contoso", "config.page_size": "10"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        assert mapping(world, "Pages_CC", "Org A")["config"] == {"page_size": 10}
        # Connect (client credentials) from the page
        connected = admin.post(f"{location}/mappings/{world.org_a}/connect", follow_redirects=False)
        assert connected.status_code == 303 and provider.count("client_credentials") == 1
        page = admin.get(location).text
        assert 'data-status="connected"' in page and "connected for Org A" in page
        # a provider that refuses: the reason is shown next to the organization
        provider.fail_once(401, {"error": "invalid_client", "error_description": "secret rotated"})
        failed = admin.post(f"{location}/mappings/{world.org_a}/connect", follow_redirects=False)
        assert failed.status_code == 422 and "Not connected" in failed.text and "invalid_client" in failed.text
        # disconnect forgets the tokens
        assert admin.post(f"{location}/mappings/{world.org_a}/disconnect", follow_redirects=False).status_code == 303
        assert mapping(world, "Pages_CC", "Org A")["connection"] is None
        # delete
        assert admin.post(f"{location}/delete", follow_redirects=False).status_code == 303
        assert admin.get(location).status_code == 404
