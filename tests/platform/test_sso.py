"""Single sign-on against a fake OpenID Connect provider on loopback, over real HTTP (issue 22).

The browser's part is played by httpx: the login page's button posts to the server (CSRF token), the
server redirects to the provider's /authorize, the provider redirects back to the callback with a code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_URL, LiveServer, create_postgres_database, drop_postgres_database, make_settings
from tests.fakes.oidc_provider import FakeOidcProvider, Person
from tests.platform.conftest import World, seed


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded server (SQLite, then Postgres when available) with room for every sign-in of this module."""
    url = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    settings = make_settings(tmp_path_factory.mktemp("sso"), url, workers=1, login_rate_limit_per_minute=10_000)
    server = LiveServer(settings).start()
    try:
        yield World(server=server, **server.call(lambda: seed(server.platform)))
    finally:
        server.stop()
        if url:
            drop_postgres_database(url)


@pytest.fixture
def fake() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider() as provider:
        yield provider


def add_provider(world: World, fake: FakeOidcProvider, **fields: Any) -> dict[str, Any]:
    body = {
        "slug": "fake-" + uuid.uuid4().hex[:8],
        "display_name": "Fake IdP",
        "kind": "oidc",
        "issuer": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        **fields,
    }
    with world.server.client(world.admin_key) as admin:
        response = admin.post("/api/sign-in/providers", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def start(client: httpx.Client, slug: str, next_url: str = "/") -> str:
    """Press the provider's button on the login page; returns the provider URL the server redirects to."""
    login = client.get("/login")
    assert f'action="/login/sso/{slug}"' in login.text
    response = client.post(f"/login/sso/{slug}", data={"_csrf_token": client.cookies["csrftoken"], "next": next_url})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def sso(world: World, fake: FakeOidcProvider, slug: str, person: Person | None) -> tuple[httpx.Client, httpx.Response]:
    """A whole sign-in; returns the browser (client) and the server's answer to the callback."""
    fake.sign_in_as = person
    client = httpx.Client(base_url=world.server.url, timeout=30)
    authorize = start(client, slug)
    assert authorize.startswith(fake.url + "/authorize?")
    back = httpx.get(authorize, timeout=30)
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(world.server.url + "/login/sso/callback?")
    return client, client.get(callback)


def me(client: httpx.Client) -> httpx.Response:
    return client.get("/api/auth/me")


def last_events(world: World, action: str, limit: int = 5) -> list[dict[str, Any]]:
    with world.server.client(world.admin_key) as admin:
        return admin.get("/api/audit", params={"action": action, "limit": limit}).json()["events"]  # type: ignore[no-any-return]


def test_sign_in_links_the_user_and_starts_a_normal_session(world: World, fake: FakeOidcProvider) -> None:
    provider = add_provider(world, fake)
    assert provider["has_client_secret"] and "client_secret" not in provider
    alice = fake.person("alice@a.example", name="Alice at IdP")
    client, response = sso(world, fake, provider["slug"], alice)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert me(client).json()["email"] == "alice@a.example"
    # The request sent to the provider: PKCE S256, state, nonce, our callback as redirect URI.
    sent = fake.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["state"] and sent["nonce"]
    assert sent["redirect_uri"] == world.server.url + "/login/sso/callback"
    assert fake.token_requests[-1]["code_verifier"]
    # A normal session: the CSRF-protected JSON API works, logout ends it.
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    assert client.post("/api/auth/logout").status_code == 200
    assert me(client).status_code == 401
    event = last_events(world, "auth.login_succeeded")[0]
    assert event["actor_email"] == "alice@a.example" and event["details"]["method"] == "sso"
    # Linked by subject: a changed (even unverified) email at the provider still finds Alice.
    alice.email, alice.email_verified = "alice.renamed@elsewhere.example", False
    client2, response2 = sso(world, fake, provider["slug"], alice)
    assert response2.status_code == 303 and me(client2).json()["email"] == "alice@a.example"


def test_wrong_audience_expired_token_and_bad_signature_are_refused(world: World, fake: FakeOidcProvider) -> None:
    slug = add_provider(world, fake)["slug"]
    bob = fake.person("bob@b.example")
    cases = [
        ({"audience": "someone-else"}, "not issued for this sign-in"),
        ({"expires_in": -600}, "expired"),  # ten minutes ago: beyond the two minutes of clock skew
        ({"issued_at_offset": 3600}, "issued in the future"),
        ({"sign_with_wrong_key": True}, "signature is not valid"),
    ]
    for knobs, message in cases:
        for name, value in knobs.items():
            setattr(fake, name, value)
        client, response = sso(world, fake, slug, bob)
        assert response.status_code == 200, knobs
        assert "Single sign-on failed" in response.text and message in response.text, (knobs, response.text[-800:])
        assert me(client).status_code == 401
        fake.audience, fake.expires_in, fake.issued_at_offset, fake.sign_with_wrong_key = None, 300, 0, False
    failed = last_events(world, "auth.login_failed", limit=4)
    assert all(e["details"]["method"] == "sso" and e["details"]["provider"] == slug for e in failed)
    # Clocks a minute apart are tolerated (a token "issued" 60 s ahead of ours).
    fake.issued_at_offset = 60
    client, response = sso(world, fake, slug, bob)
    assert response.status_code == 303 and me(client).json()["email"] == "bob@b.example"


def test_replayed_or_foreign_state_is_refused(world: World, fake: FakeOidcProvider) -> None:
    slug = add_provider(world, fake)["slug"]
    fake.sign_in_as = fake.person("alice@a.example")
    client = httpx.Client(base_url=world.server.url, timeout=30)
    callback = httpx.get(start(client, slug), timeout=30).headers["location"]
    assert client.get(callback).status_code == 303
    # The same callback again (state and code replayed), in a fresh browser and in the same one.
    again = client.get(callback)
    assert again.status_code == 200 and "already used" in again.text
    thief = httpx.Client(base_url=world.server.url, timeout=30)
    assert "already used" in thief.get(callback).text and me(thief).status_code == 401
    # A callback made in another browser (login CSRF): refused, and its state is spent too.
    attacker = httpx.Client(base_url=world.server.url, timeout=30)
    foreign = httpx.get(start(attacker, slug), timeout=30).headers["location"]
    victim = httpx.Client(base_url=world.server.url, timeout=30)
    refused = victim.get(foreign)
    assert "started in another browser" in refused.text and me(victim).status_code == 401
    assert "already used" in attacker.get(foreign).text


def test_unknown_users_are_refused_unless_the_provider_creates_them(world: World, fake: FakeOidcProvider) -> None:
    refusing = add_provider(world, fake)["slug"]
    carol = fake.person(f"carol-{uuid.uuid4().hex[:6]}@contoso.com", name="Carol Contoso")
    client, response = sso(world, fake, refusing, carol)
    assert f"There is no account for {carol.email}" in response.text and me(client).status_code == 401
    # Unverified emails never match or create anyone.
    mallory = fake.person("alice@a.example", email_verified=False, sub="sub-mallory")
    client, response = sso(world, fake, refusing, mallory)
    assert "did not send a verified email" in response.text and me(client).status_code == 401

    async def make_role() -> None:
        from app.db import transaction
        from app.services.identity.auth import AuthService
        from app.services.identity.roles import RoleService

        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(world.admin_id, world.org_b)
            await RoleService(session).create(actor, "Technicians")

    world.server.call(make_role)
    creating = add_provider(
        world, fake, create_users=True, domain_map={"contoso.com": "Org B"}, default_role="Technicians"
    )
    assert creating["domain_map"] == {"contoso.com": world.org_b}
    client, response = sso(world, fake, creating["slug"], carol)
    assert response.status_code == 303
    who = me(client).json()
    assert who["email"] == carol.email and who["organization_id"] == world.org_b and not who["is_platform_admin"]
    with world.server.client(world.admin_key) as admin:
        user = admin.get(f"/api/users/{who['user_id']}").json()
        roles = admin.get("/api/roles", headers={"X-Bifrost-Org": world.org_b}).json()
    assert user["name"] == "Carol Contoso"
    technicians = next(r for r in roles if r["name"] == "Technicians")
    with world.server.client(world.admin_key) as admin:
        members = admin.get(f"/api/roles/{technicians['id']}/users", headers={"X-Bifrost-Org": world.org_b})
    assert members.status_code == 200 and who["user_id"] in members.text
    # A domain nobody mapped, and no default organization: refused.
    dave = fake.person("dave@fabrikam.com")
    client, response = sso(world, fake, creating["slug"], dave)
    assert "not created automatically" in response.text and me(client).status_code == 401


def test_sso_only_organization_refuses_passwords_but_not_the_platform_admin(
    world: World, fake: FakeOidcProvider
) -> None:
    slug = add_provider(world, fake)["slug"]
    with world.server.client(world.admin_key) as admin:
        response = admin.put(f"/api/sign-in/organizations/{world.org_b}", json={"sso_only": True})
        assert response.status_code == 200 and response.json()["sso_only"] is True
        assert admin.put(f"/api/sign-in/organizations/{world.org_b}", json={"sso_only": "yes"}).status_code == 422
    try:
        with world.server.client() as anon:
            refused = anon.post("/api/auth/login", json={"email": "bob@b.example", "password": "bob-password"})
            assert refused.status_code == 401 and "single sign-on only" in refused.json()["detail"]
            # Break-glass: platform admins keep their password.
            admin_login = anon.post("/api/auth/login", json={"email": "admin@test.io", "password": "admin-password"})
            assert admin_login.status_code == 200
        page = httpx.Client(base_url=world.server.url, timeout=30)
        page.get("/login")
        form = {"_csrf_token": page.cookies["csrftoken"], "email": "bob@b.example", "password": "bob-password"}
        shown = page.post("/login", data=form)
        assert shown.status_code == 200 and "single sign-on only" in shown.text and me(page).status_code == 401
        client, response = sso(world, fake, slug, fake.person("bob@b.example"))
        assert response.status_code == 303 and me(client).json()["email"] == "bob@b.example"
        # API keys are unaffected.
        with world.server.client(world.bob_key) as bob:
            assert bob.get("/api/auth/me").status_code == 200
    finally:
        with world.server.client(world.admin_key) as admin:
            admin.put(f"/api/sign-in/organizations/{world.org_b}", json={"sso_only": False})


def test_provider_settings_are_checked_and_admin_only(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        bad = admin.post("/api/sign-in/providers", json={"slug": "x", "kind": "oidc", "client_id": "c"})
        assert bad.status_code == 422 and "issuer" in bad.text
        http = {"slug": "x", "kind": "oidc", "client_id": "c", "issuer": "http://idp.example.com"}
        assert "https" in admin.post("/api/sign-in/providers", json=http).text
        common = {"slug": "entra-x", "kind": "entra", "tenant": "common", "client_id": "c"}
        assert "one tenant" in admin.post("/api/sign-in/providers", json=common).text
        entra = admin.post(
            "/api/sign-in/providers",
            json={
                "slug": "entra-" + uuid.uuid4().hex[:6],
                "kind": "entra",
                "tenant": "contoso.onmicrosoft.com",
                "client_id": "c",
            },
        )
        assert entra.status_code == 201
        assert entra.json()["issuer"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        assert entra.json()["display_name"] == "Microsoft"
        google_body = {"slug": "g-" + uuid.uuid4().hex[:6], "kind": "google", "client_id": "c"}
        google = admin.post("/api/sign-in/providers", json=google_body)
        assert google.json()["issuer"] == "https://accounts.google.com"
        assert admin.delete(f"/api/sign-in/providers/{google.json()['id']}").json() == {"deleted": True}
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/api/sign-in/providers").status_code == 403
        assert alice.post("/api/sign-in/providers", json=http).status_code == 403


def test_a_provider_that_cannot_be_reached_is_a_clear_message(world: World) -> None:
    with FakeOidcProvider() as gone:
        dead_url = gone.url
    slug = "dead-" + uuid.uuid4().hex[:6]
    with world.server.client(world.admin_key) as admin:
        body = {"slug": slug, "kind": "oidc", "issuer": dead_url, "client_id": "c"}
        assert admin.post("/api/sign-in/providers", json=body).status_code == 201
    client = httpx.Client(base_url=world.server.url, timeout=30)
    client.get("/login")
    response = client.post(f"/login/sso/{slug}", data={"_csrf_token": client.cookies["csrftoken"]})
    assert response.status_code == 200 and "Cannot reach the identity provider" in response.text


@pytest.fixture(autouse=True)
def _fresh_discovery() -> None:
    from app.services.identity import oidc

    oidc.forget_cache()


def test_the_admin_page_adds_a_provider_with_a_domain_map(world: World, fake: FakeOidcProvider) -> None:
    client = httpx.Client(base_url=world.server.url, timeout=30)
    client.get("/login")
    token = client.cookies["csrftoken"]
    form = {"_csrf_token": token, "email": "admin@test.io", "password": "admin-password"}
    assert client.post("/login", data=form).status_code == 303
    page = client.get("/admin/sign-in")
    assert page.status_code == 200 and world.server.url + "/login/sso/callback" in page.text
    slug = "page-" + uuid.uuid4().hex[:6]
    fields = {
        "_csrf_token": token,
        "kind": "oidc",
        "slug": slug,
        "display_name": "Page IdP",
        "issuer": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "scopes": "openid email profile",
        "is_active": "true",
        "create_users": "true",
        "domain_map": "contoso.org = Org A\n\nfabrikam.org = Org B",
    }
    bad = client.post("/admin/sign-in/providers", data={**fields, "domain_map": "contoso.org Org A"})
    assert bad.status_code == 422 and "line 1 must read" in bad.text
    added = client.post("/admin/sign-in/providers", data=fields)
    assert added.status_code == 303
    with world.server.client(world.admin_key) as admin:
        view = admin.get(f"/api/sign-in/providers/{slug}").json()
    assert view["domain_map"] == {"contoso.org": world.org_a, "fabrikam.org": world.org_b}
    assert view["has_client_secret"] and view["create_users"]
    # Saving without a secret keeps the stored one; the page never shows it.
    edit = {**fields, "client_secret": "", "display_name": "Renamed IdP"}
    assert client.post(f"/admin/sign-in/providers/{view['id']}", data=edit).status_code == 303
    listing = client.get("/admin/sign-in").text
    assert "Renamed IdP" in listing and fake.client_secret not in listing
    _, response = sso(world, fake, slug, fake.person(f"erin-{uuid.uuid4().hex[:6]}@fabrikam.org"))
    assert response.status_code == 303  # the kept secret still authenticates at the token endpoint
    with world.server.client(world.alice_key) as alice:
        assert alice.get("/admin/sign-in").status_code == 403
