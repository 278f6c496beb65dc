"""Integrations over real HTTP, on SQLite and Postgres: definitions, mappings, the code and client-credentials
flows against a fake provider on 127.0.0.1, ``integrations.get`` from workflows, isolation and encryption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.conftest import World, browser_session
from tests.platform.integrations_support import (
    SCHEMA,
    authorize,
    callback_params,
    connect,
    define,
    finish,
    iworld,
    map_org,
    mapping,
    provider,
    read_connection,
    run,
    sha,
    unique,
)

__all__ = ["iworld", "provider"]  # the fixtures, imported for pytest


def _errors(response: Any) -> list[str]:
    return [e["field"] for e in response.json().get("extra", {}).get("errors", [])]


def test_definitions_are_validated_and_for_admins_only(iworld: World, provider: FakeOAuthProvider) -> None:
    good = {"name": unique("Def"), "oauth_flow": "authorization_code", "client_id": "c"}
    with iworld.server.client(iworld.admin_key) as admin:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"name": "has space"}, "name"),
            ({"name": "x", "oauth_flow": "implicit"}, "oauth_flow"),
            ({**good, "token_url": "https://t.example/token"}, "authorization_url"),
            ({**good, "authorization_url": "ftp://a.example", "token_url": "https://t.example"}, "authorization_url"),
            (
                {**good, "authorization_url": "https://a/{tenant}", "token_url": "https://t.example"},
                "authorization_url",
            ),
            ({"name": "x", "config_schema": [{"key": "n", "type": "int", "secret": True}]}, "config_schema[0].secret"),
            ({"name": "x", "config_schema": [{"key": "a"}, {"key": "a"}]}, "config_schema[1].key"),
            ({"name": "x", "config_schema": [{"key": "n", "type": "float"}]}, "config_schema[0].type"),
            (
                {"name": "x", "config_schema": [{"key": "n", "type": "int"}], "config_defaults": {"n": "7"}},
                "config_defaults.n",
            ),
            ({"name": "x", "config_defaults": {"nope": 1}}, "config_defaults.nope"),
            ({"name": "x", "scopes": ["a b"]}, "scopes"),
            ({"name": "x", "colour": "red"}, "colour"),
            ({"name": "x", "description": "nul \u0000 inside"}, "description"),  # Postgres cannot store NUL
            # NUL in a string value: refused before it reaches the database
            ({"name": "x", "config_schema": [{"key": "s"}], "config_defaults": {"s": "a\u0000b"}}, "config_defaults.s"),
        ]
        for body, field in cases:
            response = admin.post("/api/integrations", json=body)
            assert response.status_code == 422, (body, response.text)
            assert field in _errors(response), (body, response.json())
        created = define(iworld, provider)
        assert "client_secret" not in created and created["has_client_secret"] is True
        assert created["config_defaults"]["api_secret"] == "********"
        duplicate = admin.post("/api/integrations", json={"name": created["name"]})
        assert duplicate.status_code == 409
        # nothing half-written: the refused bodies left no integration behind
        names = {i["name"] for i in admin.get("/api/integrations").json()}
        assert "x" not in names and created["name"] in names
    with iworld.server.client(iworld.alice_key) as alice:
        assert alice.get("/api/integrations").status_code == 403
        assert alice.post("/api/integrations", json={"name": unique("Nope")}).status_code == 403
        assert alice.get(f"/api/integrations/{created['name']}/mappings").status_code == 403
        assert alice.put(f"/api/integrations/{created['name']}/mappings/Org A", json={}).status_code == 403
        assert alice.post(f"/api/integrations/{created['name']}/mappings/Org A/connect").status_code == 403


def test_mapping_values_follow_the_schema(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    with iworld.server.client(iworld.admin_key) as admin:
        for config, field in [({"page_size": "ten"}, "config.page_size"), ({"verbose": "yes"}, "config.verbose"),
                              ({"unknown": 1}, "config.unknown"), ({"api_secret": ""}, "config.api_secret")]:  # fmt: skip
            response = admin.put(f"/api/integrations/{name}/mappings/Org A", json={"config": config})
            assert response.status_code == 422 and field in _errors(response), response.text
        assert admin.put(f"/api/integrations/{name}/mappings/No Such Org", json={}).status_code == 404
    view = map_org(iworld, name, "Org A", entity_id="t-1", config={"region": "us", "api_secret": "org-secret"})
    assert view["config"] == {"region": "us", "api_secret": "********"} and view["connection"] is None
    # the mask written back keeps the stored secret; null removes the organization's value
    view = map_org(iworld, name, "Org A", config={"api_secret": "********", "region": None, "verbose": True})
    assert view["config"] == {"api_secret": "********", "verbose": True}


def test_code_flow_connects_and_workflows_get_merged_config_and_tokens(
    iworld: World, provider: FakeOAuthProvider
) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(
        iworld,
        name,
        "Org A",
        entity_id="tenant-a",
        entity_name="Contoso",
        config={"region": "us", "api_secret": "org-a-secret"},
    )
    callback = authorize(iworld, name, "Org A")
    # the provider saw PKCE and our state; the callback carries the code back
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) >= 43
    assert sent["state"] == callback_params(callback)["state"] and sent["scope"] == "offline_access read"
    response = finish(iworld, callback)
    assert response.status_code == 303 and response.headers["location"] == f"/integrations/{integration['id']}"
    exchange = provider.token_requests[-1]
    assert exchange.grant_type == "authorization_code" and exchange.status == 200
    assert exchange.tenant == "tenant-a"  # {entity_id} filled into the token URL
    assert exchange.form["code_verifier"] and "client_secret" not in exchange.form  # HTTP Basic by default
    connection = mapping(iworld, name, "Org A")["connection"]
    assert connection["status"] == "connected" and connection["scopes"] == ["offline_access", "read"]
    assert connection["expires_at"] and connection["has_refresh_token"] is True

    result = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert result["found"] is True and result["integration_id"] == integration["id"]
    assert result["entity_id"] == "tenant-a" and result["entity_name"] == "Contoso"
    # defaults, then the organization's values; the secret arrives in clear (redacted from the result)
    assert result["config"]["api_base"] == provider.url and result["config"]["region"] == "us"
    assert result["config"]["page_size"] == 50 and "verbose" not in result["config"]
    assert result["config"]["api_secret"] == "***" and result["config_sha256"]["api_secret"] == sha("org-a-secret")
    assert result["oauth"]["access_sha256"] == sha(exchange.response["access_token"])
    assert result["oauth"]["refresh_sha256"] == sha(exchange.response["refresh_token"])
    assert result["oauth"]["token_type"] == "Bearer" and result["oauth"]["scopes"] == ["offline_access", "read"]
    # and the token works at the provider's API
    called = run(iworld, iworld.alice_key, "integration_call_api", name=name)["result"]
    assert called == {"status": 200, "body": {"ok": True, "tenant": None}}


def test_callback_failures_are_explained_and_store_nothing(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(iworld, name, "Org B", entity_id="tenant-b")

    def fails(callback: str, expected: str) -> None:
        response = finish(iworld, callback)
        assert response.status_code == 400 and expected in response.text, response.text
        assert mapping(iworld, name, "Org B")["connection"] is None

    good = authorize(iworld, name, "Org B")
    params = callback_params(good)
    base = good.split("?")[0]
    fails(f"{base}?code={params['code']}&state=forged-state", "unknown or was already used")
    fails(f"{base}?code={params['code']}", "has no state")
    # the provider refused consent
    provider.authorize_error = "access_denied"
    fails(authorize(iworld, name, "Org B"), "access_denied")
    provider.authorize_error = None
    # a token response without access_token
    provider.omit_fields = {"access_token"}
    fails(authorize(iworld, name, "Org B"), "lacks access_token")
    provider.omit_fields = {"token_type"}
    fails(authorize(iworld, name, "Org B"), "lacks token_type")
    provider.omit_fields = set()
    # the provider refuses the exchange
    provider.fail_once(400, {"error": "invalid_grant", "error_description": "code expired"})
    fails(authorize(iworld, name, "Org B"), "invalid_grant")
    # a callback by another user than the one who pressed Connect
    other = authorize(iworld, name, "Org B")
    with browser_session(iworld, "alice@a.example", "alice-password") as alice:
        response = alice.get(other.removeprefix(iworld.server.url), follow_redirects=False)
        assert response.status_code == 400 and "started by another user" in response.text
    assert mapping(iworld, name, "Org B")["connection"] is None
    # the first, untouched authorization still works once; replaying its state is refused
    assert finish(iworld, good).status_code == 303
    assert mapping(iworld, name, "Org B")["connection"]["status"] == "connected"
    response = finish(iworld, good)
    assert response.status_code == 400 and "unknown or was already used" in response.text


def test_client_credentials_flow(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(
        iworld, provider, flow="client_credentials", tenant_urls=False, token_auth_method="client_secret_post"
    )
    name = integration["name"]
    map_org(iworld, name, "Org A")
    with iworld.server.client(iworld.admin_key) as admin:
        response = admin.post(f"/api/integrations/{name}/mappings/Org A/connect")
        assert response.status_code == 200, response.text
        assert response.json()["connection"]["has_refresh_token"] is False
    grant = provider.token_requests[-1]
    assert grant.grant_type == "client_credentials" and grant.form["client_secret"] == provider.client_secret
    result = run(iworld, iworld.alice_key, "integration_get", name=name)["result"]
    assert (
        result["oauth"]["access_sha256"] == sha(grant.response["access_token"])
        and result["oauth"]["refresh_sha256"] is None
    )
    # wrong client secret: a clear 502 naming the provider's answer, and nothing stored
    map_org(iworld, name, "Org B")
    with iworld.server.client(iworld.admin_key) as admin:
        assert admin.patch(f"/api/integrations/{name}", json={"client_secret": "wrong"}).status_code == 200
        response = admin.post(f"/api/integrations/{name}/mappings/Org B/connect")
        assert response.status_code == 502 and "invalid_client" in response.json()["detail"]
    assert mapping(iworld, name, "Org B")["connection"] is None


def test_entity_id_is_required_by_urls_that_use_it(iworld: World, provider: FakeOAuthProvider) -> None:
    name = define(iworld, provider, flow="client_credentials")["name"]
    map_org(iworld, name, "Org A")
    with iworld.server.client(iworld.admin_key) as admin:
        response = admin.post(f"/api/integrations/{name}/mappings/Org A/connect")
    assert response.status_code == 422 and "entity_id" in _errors(response)


def test_organizations_see_only_their_own_mapping(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(iworld, name, "Org A", entity_id="tenant-a", config={"api_secret": "only-for-a"})
    connect(iworld, name, "Org A")
    token_a = provider.last_access_token()
    # Bob (Org B) has no mapping: integrations.get returns None; naming Org A is refused
    assert run(iworld, iworld.bob_key, "integration_get", name=name)["result"] == {"found": False}
    denied = run(iworld, iworld.bob_key, "integration_get", name=name, org_id=iworld.org_a)["result"]
    assert denied["error"] == "PermissionDeniedError" and "platform admins" in denied["message"]
    with iworld.server.client(iworld.bob_key) as bob:
        assert bob.get(f"/api/integrations/{name}", params={"org_id": iworld.org_a}).status_code == 403
        assert bob.get(f"/api/integrations/{name}").status_code == 404
    # a platform admin may name the organization
    with iworld.server.client(iworld.admin_key) as admin:
        body = {"params": {"name": name, "org_id": "Org A"}}
        execution = admin.post("/api/workflows/integration_get/execute?wait=true", json=body).json()
    assert execution["status"] == "Completed" and execution["result"]["oauth"]["access_sha256"] == sha(token_a)
    # outside executions (API keys, sessions) secrets and tokens are masked
    with iworld.server.client(iworld.alice_key) as alice:
        data = alice.get(f"/api/integrations/{name}").json()
    assert data["config"]["api_secret"] == "********" and data["oauth"]["access_token"] == "********"
    assert data["oauth"]["masked"] is True and token_a not in str(data)


def test_tokens_and_secrets_are_encrypted_at_rest(iworld: World, provider: FakeOAuthProvider) -> None:
    provider.client_secret = "client-secret-plaintext-zq"
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(iworld, name, "Org A", entity_id="tenant-a", config={"api_secret": "org-secret-plaintext-zq"})
    connect(iworld, name, "Org A")
    access, refresh = provider.last_access_token(), provider.token_requests[-1].response["refresh_token"]
    row = read_connection(iworld, integration["id"], iworld.org_a)
    assert row["access_token"].startswith("gAAAA") and access not in row["access_token"]
    plaintexts = [access, refresh, "client-secret-plaintext-zq", "org-secret-plaintext-zq", "default-secret-1"]
    database_url = iworld.server.settings.database_url
    if database_url is None:  # SQLite: the raw bytes of the database file and its write-ahead log
        home = Path(iworld.server.settings.home)
        raw = b"".join(p.read_bytes() for p in home.glob("bifrost.db*"))
        assert b"gAAAA" in raw  # the encrypted values are there...
    else:  # Postgres: every text column of the integration tables
        raw = _dump_integration_tables(iworld).encode()
        assert b"gAAAA" in raw
    for plaintext in plaintexts:
        assert plaintext.encode() not in raw, plaintext  # ...and no plaintext


def _dump_integration_tables(world: World) -> str:
    async def dump() -> str:
        from sqlalchemy import text

        from app.db import transaction

        parts = []
        async with transaction(world.server.platform.sessions) as session:
            for table in ("integration", "integration_mapping", "integration_connection", "integration_oauth_state"):
                rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
                parts.append(repr(rows))
        return "\n".join(parts)

    return world.server.call(dump)  # type: ignore[no-any-return]


def test_secrets_and_tokens_are_redacted_from_logs_and_results(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(iworld, name, "Org A", entity_id="tenant-a", config={"api_secret": "printed-secret-zq"})
    connect(iworld, name, "Org A")
    token = provider.last_access_token()
    execution = run(iworld, iworld.alice_key, "integration_print_secret", name=name)
    assert execution["result"] == "***|***"
    with iworld.server.client(iworld.alice_key) as alice:
        logs = alice.get(f"/api/executions/{execution['execution_id']}/logs").json()
    text = str(logs)
    assert "secret is *** token is ***" in text and token not in text and "printed-secret-zq" not in text


def test_schema_change_drops_values_that_no_longer_fit(iworld: World, provider: FakeOAuthProvider) -> None:
    integration = define(iworld, provider)
    name = integration["name"]
    map_org(iworld, name, "Org A", config={"region": "us", "page_size": 10})
    schema = [f for f in SCHEMA if f["key"] != "region"] + [{"key": "region", "type": "json"}]
    with iworld.server.client(iworld.admin_key) as admin:
        response = admin.patch(f"/api/integrations/{name}", json={"config_schema": schema})
        assert response.status_code == 200, response.text
        assert "region" not in response.json()["config_defaults"]
    assert mapping(iworld, name, "Org A")["config"] == {"page_size": 10}
