"""Token refresh, on SQLite and Postgres: on demand, one at a time, ahead of expiry, and when the provider says no."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World, browser_session
from tests.platform.integrations_support import (
    connect,
    define,
    iworld,
    map_org,
    mapping,
    provider,
    run,
    sha,
)

__all__ = ["iworld", "provider"]  # the fixtures, imported for pytest


def _connected(world: World, provider: FakeOAuthProvider, *, expires_in: int, org: str = "Org A") -> dict[str, Any]:
    """A connected code-flow integration whose first token lives ``expires_in`` seconds; later ones an hour."""
    integration = define(world, provider)
    map_org(world, integration["name"], org, entity_id="tenant-x")
    provider.expires_in = expires_in
    connect(world, integration["name"], org)
    provider.expires_in = 3600
    return integration


def test_a_token_about_to_expire_is_refreshed_before_it_is_returned(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = _connected(iworld, provider, expires_in=60)  # within the 300 s leeway
    first = provider.token_requests[-1].response
    result = run(iworld, iworld.alice_key, "integration_get", name=integration["name"])["result"]
    assert provider.count("refresh_token") == 1
    refresh = provider.token_requests[-1]
    assert refresh.form["refresh_token"] == first["refresh_token"] and refresh.tenant == "tenant-x"
    assert result["oauth"]["access_sha256"] == sha(refresh.response["access_token"]) != sha(first["access_token"])
    assert result["oauth"]["refresh_sha256"] == sha(refresh.response["refresh_token"])  # rotated and stored
    connection = mapping(iworld, integration["name"], "Org A")["connection"]
    assert connection["refresh_count"] == 1 and connection["last_refreshed_at"] and connection["last_error"] is None
    # fresh now: the next call does not go to the provider
    again = run(iworld, iworld.alice_key, "integration_get", name=integration["name"])["result"]
    assert again["oauth"]["access_sha256"] == result["oauth"]["access_sha256"] and provider.count("refresh_token") == 1


def test_concurrent_calls_refresh_once(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = _connected(iworld, provider, expires_in=60)
    provider.token_delay = 0.5  # the refresh is slow: every other call arrives while it is in flight
    name = integration["name"]
    with ThreadPoolExecutor(4) as pool:
        many = pool.submit(run, iworld, iworld.alice_key, "integration_get_many", name=name, count=8)
        singles = [pool.submit(run, iworld, iworld.alice_key, "integration_get", name=name) for _ in range(3)]
        results = [many.result()["result"]] + [s.result()["result"] for s in singles]
    assert results[0] == {"distinct_tokens": 1, "errors": []}
    tokens = {r["oauth"]["access_sha256"] for r in results[1:]}
    assert provider.count("refresh_token", ok_only=False) == 1  # one refresh for 11 calls from 4 executions
    assert tokens == {sha(provider.last_access_token())}


def test_a_revoked_refresh_token_breaks_the_connection(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = _connected(iworld, provider, expires_in=60)
    name = integration["name"]
    assert provider.revoke_refresh_tokens() == 1
    result = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert result["error"] == "IntegrationError"
    assert "invalid_grant" in result["message"] and "connect" in result["message"].lower()
    connection = mapping(iworld, name, "Org A")["connection"]
    assert connection["status"] == "broken" and "invalid_grant" in connection["last_error"]
    # broken stays broken without asking the provider again
    again = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert again["error"] == "IntegrationError" and "broken" in again["message"]
    assert provider.count("refresh_token", ok_only=False) == 1
    with iworld.server.client(iworld.alice_key) as alice:  # outside executions the status is shown, masked
        assert alice.get(f"/api/integrations/{name}").json()["oauth"]["status"] == "broken"
    with browser_session(iworld) as admin:
        page = admin.get(f"/integrations/{integration['id']}")
        assert "Broken" in page.text and "invalid_grant" in page.text
    # connecting again repairs it
    connect(iworld, name, "Org A")
    fixed = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert fixed["oauth"]["access_sha256"] == sha(provider.last_access_token())


def test_background_job_refreshes_ahead_of_expiry_and_reports_failures(
    iworld: World, provider: FakeOAuthProvider, caplog: pytest.LogCaptureFixture
) -> None:
    integration = _connected(iworld, provider, expires_in=600)  # outside the leeway, inside the 900 s look-ahead
    name = integration["name"]
    refresher = iworld.server.platform.token_refresher
    # integrations.get does not refresh it yet: 600 s is plenty
    run(iworld, iworld.alice_key, "integration_get", name=name)
    assert provider.count("refresh_token") == 0
    provider.expires_in = 600  # the refreshed token is due again, for the failure below
    outcome = iworld.server.call(refresher.run_once)
    assert outcome.refreshed >= 1 and provider.count("refresh_token") == 1
    connection = mapping(iworld, name, "Org A")["connection"]
    assert connection["refresh_count"] == 1 and connection["last_error"] is None
    # the provider is down: the failure is stored, shown and logged; the still-valid token stays usable
    provider.fail_once(503, {"error": "temporarily_unavailable"})
    with caplog.at_level(logging.WARNING, logger="app.services.integrations.oauth_tokens"):
        outcome = iworld.server.call(refresher.run_once)
    assert outcome.failed >= 1
    assert any("token refresh failed" in r.getMessage() and name in r.getMessage() for r in caplog.records)
    connection = mapping(iworld, name, "Org A")["connection"]
    assert connection["status"] == "connected" and "HTTP 503" in connection["last_error"]
    with browser_session(iworld) as admin:
        assert "HTTP 503" in admin.get(f"/integrations/{integration['id']}").text
    still = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert "oauth" in still and still["oauth"]["access_sha256"] == sha(provider.last_access_token())
    # next round works and clears the failure
    provider.expires_in = 3600
    iworld.server.call(refresher.run_once)
    connection = mapping(iworld, name, "Org A")["connection"]
    assert connection["refresh_count"] == 2 and connection["last_error"] is None


def test_client_credentials_tokens_are_renewed(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider, flow="client_credentials", tenant_urls=False)
    name = integration["name"]
    map_org(iworld, name, "Org A")
    provider.expires_in = 60
    with iworld.server.client(iworld.admin_key) as admin:
        assert admin.post(f"/api/integrations/{name}/mappings/Org A/connect").status_code == 200
    provider.expires_in = 3600
    result = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert provider.count("client_credentials") == 2
    assert result["oauth"]["access_sha256"] == sha(provider.last_access_token())


def test_a_refresh_claimed_by_another_process_is_waited_for(iworld: World, provider: FakeOAuthProvider) -> None:
    """The database guard: while another server holds the refresh claim, this one waits for its tokens."""
    integration = _connected(iworld, provider, expires_in=60)
    name, settings = integration["name"], iworld.server.settings

    async def sql(statement: str, **values: Any) -> None:
        from sqlalchemy import text

        from app.db import transaction

        async with transaction(iworld.server.platform.sessions) as session:
            await session.execute(text(statement), values)

    where = "mapping_id = (SELECT id FROM integration_mapping WHERE integration_id = :integration AND organization_id = :org)"
    ids = {"integration": integration["id"], "org": iworld.org_a}

    async def claim() -> None:
        from app.models.base import utcnow

        until = utcnow() + timedelta(seconds=30)
        await sql(f"UPDATE integration_connection SET refresh_claim = 'other', refresh_claim_until = :until WHERE {where}", until=until, **ids)  # fmt: skip

    async def other_process_stores() -> None:
        from app.models.base import utcnow
        from app.services.secrets import secret_box

        token = secret_box(settings.secret_key, settings.home).encrypt("token-from-the-other-server")
        await sql(
            "UPDATE integration_connection SET access_token = :token, expires_at = :expires, version = version + 1, "
            f"refresh_claim = NULL, refresh_claim_until = NULL WHERE {where}",
            token=token,
            expires=utcnow() + timedelta(hours=1),
            **ids,
        )

    iworld.server.call(claim)
    with iworld.server.client(iworld.alice_key) as alice:
        started = alice.post("/api/workflows/integration_get/execute", json={"params": {"name": name}}).json()
        execution_id = started["execution_id"]
        deadline = time.monotonic() + 60
        while alice.get(f"/api/executions/{execution_id}").json()["status"] != "Running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the workflow needs milliseconds; still running means it is waiting for the claim
        assert alice.get(f"/api/executions/{execution_id}").json()["status"] == "Running"
        iworld.server.call(other_process_stores)
        while (execution := alice.get(f"/api/executions/{execution_id}").json())["status"] == "Running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert execution["status"] == "Completed", execution
    assert execution["result"]["oauth"]["access_sha256"] == sha("token-from-the-other-server")
    assert provider.count("refresh_token", ok_only=False) == 0  # this server never called the provider
