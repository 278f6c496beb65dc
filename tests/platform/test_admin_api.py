"""Organizations, users, roles, API keys and sessions over the JSON API and the SDK API."""

from __future__ import annotations

import httpx

from tests.platform.conftest import World, browser_session


def test_organization_crud_for_admins(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        created = admin.post("/api/organizations", json={"name": "Contoso", "domain": "contoso.com"})
        assert created.status_code == 201
        org = created.json()
        assert org == {"id": org["id"], "name": "Contoso", "is_active": True, "domain": "contoso.com"}
        assert admin.post("/api/organizations", json={"name": "contoso"}).status_code == 409
        assert admin.post("/api/organizations", json={"name": "  "}).status_code == 422
        updated = admin.patch(f"/api/organizations/{org['id']}", json={"domain": "contoso.org"}).json()
        assert updated["domain"] == "contoso.org"
        bad = admin.patch(f"/api/organizations/{org['id']}", json={"colour": "red"})
        assert bad.status_code == 422 and bad.json()["extra"]["errors"][0]["field"] == "colour"
        assert admin.delete(f"/api/organizations/{org['id']}").json() == {"deleted": True}
        names = [o["name"] for o in admin.get("/api/organizations").json()]
        assert "Contoso" not in names and "Org A" in names
        assert admin.get("/api/organizations/does-not-exist").status_code == 404


def test_user_management_and_validation(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        bad = admin.post("/api/users", json={"email": "not-an-email", "name": "X", "org_id": world.org_a})
        assert bad.status_code == 422 and bad.json()["extra"]["errors"][0]["field"] == "email"
        orphan = admin.post("/api/users", json={"email": "o@a.example", "name": "Orphan"})
        assert orphan.status_code == 422 and "organization" in orphan.json()["detail"]
        created = admin.post(
            "/api/users",
            json={"email": "Carol@A.example", "name": "Carol", "org_id": world.org_a, "password": "carol-password"},
        ).json()
        assert created["email"] == "carol@a.example" and created["is_superuser"] is False
        assert "password" not in created and "password_hash" not in created
        dup = admin.post("/api/users", json={"email": "carol@a.example", "name": "Carol 2", "org_id": world.org_a})
        assert dup.status_code == 409
        in_a = {u["email"] for u in admin.get("/api/users", params={"org_id": world.org_a}).json()}
        assert {"alice@a.example", "carol@a.example"} <= in_a and "bob@b.example" not in in_a
        assert admin.patch(f"/api/users/{created['id']}", json={"name": "Caroline"}).json()["name"] == "Caroline"
        assert admin.delete(f"/api/users/{created['id']}").json() == {"deleted": True}
        assert admin.get(f"/api/users/{created['id']}").json()["is_active"] is False
    # the deactivated user can no longer log in
    with world.server.client() as browser:
        login = browser.post("/api/auth/login", json={"email": "carol@a.example", "password": "carol-password"})
        assert login.status_code == 401


def test_roles_live_in_an_organization_with_user_assignment(world: World) -> None:
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_a}) as admin:
        role = admin.post("/api/roles", json={"name": "Helpdesk", "description": "Tier 1"}).json()
        assert role["organization_id"] == world.org_a and role["is_active"] is True
        assert admin.post("/api/roles", json={"name": "helpdesk"}).status_code == 409
        assert admin.post(f"/api/roles/{role['id']}/users", json={"user_ids": [world.alice_id]}).status_code == 204
        assert admin.get(f"/api/roles/{role['id']}/users").json() == [world.alice_id]
        # Bob is in Org B: refused, and nothing is half-written
        mixed = admin.post(f"/api/roles/{role['id']}/users", json={"user_ids": [world.alice_id, world.bob_id]})
        assert mixed.status_code == 422 and world.bob_id in mixed.json()["detail"]
        assert admin.get(f"/api/roles/{role['id']}/users").json() == [world.alice_id]
        unknown_form = admin.post(f"/api/roles/{role['id']}/forms", json={"form_ids": ["nope"]})
        assert unknown_form.status_code == 422
        assert admin.get(f"/api/roles/{role['id']}/forms").json() == []
        assert (
            admin.patch(f"/api/roles/{role['id']}", json={"description": "Tier 1 and 2"}).json()["description"]
            == "Tier 1 and 2"
        )
        assert [r["name"] for r in admin.get("/api/roles").json()] == ["Helpdesk"]
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_b}) as admin_b:
        assert admin_b.get(f"/api/roles/{role['id']}").status_code == 404
        assert admin_b.get("/api/roles").json() == []
    with world.server.client(world.admin_key) as admin_global:
        response = admin_global.get("/api/roles")
        assert response.status_code == 422 and "organization" in response.json()["detail"]
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/api/roles").status_code == 403


def test_api_keys_are_shown_once_hashed_limited_and_revocable(world: World) -> None:
    with browser_session(world) as admin:  # keys are created by logged-in users, never by other keys
        created = admin.post(
            "/api/api-keys", json={"name": "ci", "organization_id": world.org_a, "workflow_id": "add"}
        ).json()
        key = created["key"]
        assert key.startswith("bfk_")
        listed = admin.get("/api/api-keys").json()
        assert all("key" not in k for k in listed)
        assert any(k["id"] == created["id"] for k in listed)
    with world.server.client(key) as limited:
        ok = limited.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}}).json()
        assert ok["org_id"] == world.org_a and ok["result"] == {"sum": 3}
        assert limited.post("/api/workflows/whoami/execute", json={}).status_code == 403
        assert limited.get("/api/organizations").status_code == 403  # an org-limited key has no admin powers
        wrong_org = limited.post("/api/workflows/add/execute", json={"params": {"a": 1}, "org": world.org_b})
        assert wrong_org.status_code == 403
    with browser_session(world) as admin:
        after = next(k for k in admin.get("/api/api-keys").json() if k["id"] == created["id"])
        assert after["last_used_at"] is not None
        assert admin.delete(f"/api/api-keys/{created['id']}").json()["revoked"] is True
    with world.server.client(key) as revoked:
        assert revoked.get("/api/workflows").status_code == 401


def test_session_login_me_and_csrf(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as browser:
        assert (
            browser.post("/api/auth/login", json={"email": "alice@a.example", "password": "wrong"}).status_code == 401
        )
        login = browser.post("/api/auth/login", json={"email": "ALICE@a.example", "password": "alice-password"})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        me = browser.get("/api/auth/me").json()
        assert me["email"] == "alice@a.example" and me["acting_org_id"] == world.org_a
        # unsafe JSON call with only the cookie: refused without the CSRF header
        refused = browser.post("/api/workflows/add/execute", json={"params": {"a": 1}})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        browser.get("/login")  # sets the csrftoken cookie
        token = browser.cookies.get("csrftoken")
        assert token
        accepted = browser.post(
            "/api/workflows/add/execute?wait=true", json={"params": {"a": 1}}, headers={"X-CSRFToken": token}
        )
        assert accepted.status_code == 200 and accepted.json()["result"] == {"sum": 3}
        browser.post("/api/auth/logout", headers={"X-CSRFToken": token})
        assert browser.get("/api/auth/me").status_code == 401


def test_login_page_and_home(world: World) -> None:
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
        assert browser.get("/").status_code == 303
        page = browser.get("/login")
        assert page.status_code == 200 and "Log in" in page.text
        token = browser.cookies.get("csrftoken")
        no_csrf = browser.post("/login", data={"email": "alice@a.example", "password": "alice-password"})
        assert no_csrf.status_code == 403
        wrong = browser.post("/login", data={"email": "alice@a.example", "password": "nope", "_csrf_token": token})
        assert wrong.status_code == 200 and "Invalid email or password" in wrong.text
        assert "bifrost_session" not in wrong.headers.get("set-cookie", "")
        ok = browser.post(
            "/login",
            data={
                "email": "alice@a.example",
                "password": "alice-password",
                "_csrf_token": token,
                "next": "//evil.example",
            },
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        home = browser.get("/")
        assert home.status_code == 200 and "<code>add</code>" in home.text and "Alice" in home.text


def test_sdk_api_mirrors_the_json_api(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        orgs = admin.get("/api/sdk/v1/organizations").json()
        assert {"Org A", "Org B"} <= {o["name"] for o in orgs}
        ctx = admin.get("/api/sdk/v1/context").json()
        assert ctx["is_platform_admin"] is True
        wfs = admin.get("/api/sdk/v1/workflows").json()
        assert "add" in {w["name"] for w in wfs}
        # integrations is served now (the 501 answer of modules not yet served is tested in test_sdk_remote)
        unknown = admin.get("/api/sdk/v1/integrations/anything")
        assert unknown.status_code == 404 and "anything" in unknown.json()["detail"]
    with world.server.client() as anonymous:
        assert anonymous.get("/api/sdk/v1/workflows").status_code == 401
        assert anonymous.get("/api/sdk/v1/integrations/anything").status_code == 401


def test_workflow_catalogue_has_parameters_and_data_providers(world: World) -> None:
    with world.server.client(world.alice_key) as client:
        add = client.get("/api/workflows/add").json()
        assert add["category"] == "Math" and add["description"] == "Add two numbers."
        params = {p["name"]: p for p in add["parameters"]}
        assert params["a"]["required"] is True and params["a"]["description"] == "First."
        assert params["b"]["default"] == 2
        # A member sees the data providers of the workflows and forms they may use (docs/access.md);
        # ``colours`` feeds none of them, so only platform admins (who build forms) list it.
        providers = {p["name"] for p in client.get("/api/data-providers").json()}
        assert "colours" not in providers
        assert client.get("/api/workspace/errors").status_code == 403
    with world.server.client(world.admin_key) as admin:
        assert "colours" in {p["name"] for p in admin.get("/api/data-providers").json()}


def test_password_guessing_is_rate_limited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import LiveServer, make_settings

    server = LiveServer(make_settings(tmp_path, login_rate_limit_per_minute=3)).start()
    try:
        with server.client() as client:
            codes = [
                client.post("/api/auth/login", json={"email": "x@y.example", "password": "guess"}).status_code
                for _ in range(5)
            ]
            assert codes[:3] == [401, 401, 401]
            assert codes[3:] == [429, 429]
            # other routes are not throttled
            assert client.get("/login").status_code == 200
    finally:
        server.stop()


def test_deactivated_organization_locks_its_users_out(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        org = admin.post("/api/organizations", json={"name": "Shortlived"}).json()
        admin.post(
            "/api/users",
            json={"email": "s@short.example", "name": "S", "org_id": org["id"], "password": "short-password"},
        )
    with world.server.client() as browser:
        assert (
            browser.post("/api/auth/login", json={"email": "s@short.example", "password": "short-password"}).status_code
            == 200
        )
        with world.server.client(world.admin_key) as admin:
            assert admin.delete(f"/api/organizations/{org['id']}").json() == {"deleted": True}
        assert browser.get("/api/auth/me").status_code == 401
        refused = browser.post("/api/auth/login", json={"email": "s@short.example", "password": "short-password"})
        assert refused.status_code == 401 and "deactivated" in refused.json()["detail"]


def test_odd_input_gets_4xx_never_500(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        first = admin.post("/api/organizations", json={"name": "Ärzte Öffentlich"})
        assert first.status_code == 201
        again = admin.post("/api/organizations", json={"name": "Ärzte Öffentlich"})
        assert again.status_code == 409  # SQLite's lower() ignores Ä: the exact match must still catch it
    with browser_session(world) as admin:
        unlimited = admin.post("/api/api-keys", json={"name": "blank org", "organization_id": "", "workflow_id": ""})
        assert unlimited.status_code == 201 and unlimited.json()["organization_id"] is None
        unknown_wf = admin.post("/api/api-keys", json={"name": "x", "workflow_id": "no_such_workflow"})
        assert unknown_wf.status_code == 422 and unknown_wf.json()["extra"]["errors"][0]["field"] == "workflow_id"
        unknown_org = admin.post("/api/api-keys", json={"name": "x", "organization_id": "nope"})
        assert unknown_org.status_code == 422
    with world.server.client(world.admin_key) as admin:
        malformed = admin.post(
            "/api/workflows/add/execute", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        wrong_shape = admin.post("/api/workflows/add/execute", json={"params": [1, 2]})
        assert wrong_shape.status_code == 400 and "params" in wrong_shape.text
        bad_limit = admin.get("/api/executions", params={"limit": "lots"})
        assert bad_limit.status_code == 400
        assert admin.get("/api/executions", params={"limit": 0}).status_code == 422
        assert admin.get("/api/executions", params={"offset": 10**30}).status_code in (400, 422)
        run = admin.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 1}}).json()
        huge = admin.get(f"/api/executions/{run['execution_id']}/logs", params={"after": 10**30})
        assert huge.status_code in (400, 422)


def test_health_is_public_and_says_nothing_status_is_for_admins(world: World) -> None:
    with world.server.client() as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/api/workspace/status").status_code == 403
    with world.server.client(world.admin_key) as admin:
        status = admin.get("/api/workspace/status").json()
        assert status["workers"]["size"] == 2 and status["workers"]["workers"] == 2
        assert status["last_sync"]["errors"] == 0
