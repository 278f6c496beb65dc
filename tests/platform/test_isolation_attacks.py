"""Isolation, attacked: every JSON API and SDK route of the foundation and the data modules, as the wrong user.

Org B's user (bob) and a platform admin create data in org B and globally; org A's user (alice)
then tries every route against it: by id and by name, with org B named in the ``X-Bifrost-Org``
header, in ``org_id``/``scope`` parameters and in crafted file paths, without credentials, and
from inside a workflow with her execution's own SDK token. Each attempt must be refused (or see
nothing) and leave org B's data as it was.

The last test checks that every route of these families was attacked at least once (the ledger
is module state: the suite runs files whole on one worker, ``--dist loadfile``), so a new
route without an attack fails the suite, and prints how many (route, attack) pairs were tried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.platform.conftest import World, browser_session

PREFIXES = ("/api", "/api/sdk/v1")
# The route families of the foundation and data-modules issues (JSON API and SDK API).
FAMILIES = (
    "/workflows",
    "/data-providers",
    "/executions",
    "/organizations",
    "/users",
    "/roles",
    "/api-keys",
    "/workspace",
    "/config",
    "/tables",
    "/files",
    "/forms",
)
REFUSED = {403, 404}
NO_CREDENTIALS = {401, 403}  # 403: routes closed to everyone on this prefix refuse before authenticating


@dataclass
class Ledger:
    """The (route, attack) pairs tried, and what they were refused with."""

    tried: set[tuple[str, str, str]] = field(default_factory=set)

    def hit(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        route: str,
        attack: str,
        expect: set[int],
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one attack and check its status; ``route`` is the route template without the prefix."""
        response = client.request(method, url, **kwargs)
        prefix = "/api/sdk/v1" if url.startswith("/api/sdk/v1") else "/api"
        assert response.status_code in expect, (
            f"{attack}: {method} {url} answered {response.status_code}, expected {sorted(expect)}: {response.text[:300]}"
        )
        assert response.status_code < 500
        self.tried.add((method, prefix + route, attack))
        return response


LEDGER = Ledger()
SECRET_VALUES = ("bob-plain-value", "bob-secret-value", "bob-data", "bob-file-content", "bob@b.example")


@dataclass
class Victim:
    """What org B (and the admin, globally) own."""

    execution_id: str
    form_auth: str
    form_role: str
    role_id: str
    bob_key_id: str
    global_key: str = "g_plain"


@pytest.fixture(scope="module")
def victim(world: World) -> Victim:
    with world.server.client(world.bob_key) as bob:
        assert bob.put("/api/config/b_plain", json={"value": "bob-plain-value"}).status_code == 200
        assert bob.put("/api/config/b_secret", json={"value": "bob-secret-value", "is_secret": True}).status_code == 200
        doc = bob.post("/api/tables/b_table/documents", json={"id": "b-doc", "data": {"owner": "bob-data"}})
        assert doc.status_code == 201, doc.text
        for location in ("workspace", "temp"):
            put = bob.put(
                "/api/files/content", params={"path": "b/file.txt", "location": location}, content=b"bob-file-content"
            )
            assert put.status_code == 200, put.text
        run = bob.post("/api/workflows/add/execute?wait=true", json={"params": {"a": 40, "b": 2}}).json()
        assert run["status"] == "Completed"
    with world.server.client(world.admin_key) as admin:
        assert admin.put("/api/config/g_plain", json={"value": "global-value"}).status_code == 200
    with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_b}) as admin_b:
        role = admin_b.post("/api/roles", json={"name": "B Ops"}).json()
        forms = {}
        for level in ("authenticated", "role_based"):
            created = admin_b.post(
                "/api/forms",
                json={
                    "name": f"B {level}",
                    "workflow_id": "add",
                    "access_level": level,
                    "organization_id": world.org_b,
                },
            )
            assert created.status_code == 201, created.text
            forms[level] = created.json()["id"]
        assigned = admin_b.post(f"/api/roles/{role['id']}/forms", json={"form_ids": [forms["role_based"]]})
        assert assigned.status_code in (200, 201, 204), assigned.text
    with browser_session(world, "bob@b.example", "bob-password") as bob_browser:
        keys = bob_browser.get("/api/api-keys").json()
    return Victim(
        execution_id=run["execution_id"],
        form_auth=forms["authenticated"],
        form_role=forms["role_based"],
        role_id=role["id"],
        bob_key_id=keys[0]["id"],
    )


@pytest.fixture(scope="module")
def alice(world: World) -> Iterator[httpx.Client]:
    with world.server.client(world.alice_key) as client:
        yield client


@pytest.fixture(scope="module")
def alice_as_b(world: World) -> Iterator[httpx.Client]:
    """Alice's key, asking to act in org B."""
    with world.server.client(world.alice_key, **{"X-Bifrost-Org": world.org_b}) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(world: World) -> Iterator[httpx.Client]:
    with world.server.client() as client:
        yield client


def _no_leak(response: httpx.Response) -> None:
    for value in SECRET_VALUES:
        assert value not in response.text, f"{response.request.method} {response.request.url} leaked {value!r}"


def _bob_data_intact(world: World, victim: Victim) -> None:
    """Org B's data is exactly as bob left it."""
    with world.server.client(world.bob_key) as bob:
        assert bob.get("/api/config").json()["b_plain"] == "bob-plain-value"
        doc = bob.get("/api/tables/b_table/documents/b-doc").json()
        assert doc["data"] == {"owner": "bob-data"}
        for location in ("workspace", "temp"):
            content = bob.get("/api/files/content", params={"path": "b/file.txt", "location": location})
            assert content.content == b"bob-file-content"
        assert bob.get(f"/api/executions/{victim.execution_id}").json()["result"] == {"sum": 42}
    with world.server.client(world.admin_key) as admin:
        assert admin.get(f"/api/forms/{victim.form_auth}").status_code == 200
        assert admin.get(f"/api/forms/{victim.form_role}/roles").json() == [victim.role_id]
        assert admin.get("/api/config/g_plain").json()["value"] == "global-value"


# ----- every route, each prefix ---------------------------------------------------------------------
def test_acting_in_another_org_is_refused_on_every_route(
    world: World, victim: Victim, alice_as_b: httpx.Client, anonymous: httpx.Client
) -> None:
    """``X-Bifrost-Org: <org B>`` with alice's key, and no credentials at all, on every route."""
    routes = _routes(world)
    for method, path in routes:
        url = _fill(path, victim)
        body = {} if method in {"POST", "PUT", "PATCH"} else None
        prefix = "/api/sdk/v1" if path.startswith("/api/sdk/v1") else "/api"
        route = path[len(prefix) :]
        response = LEDGER.hit(
            alice_as_b,
            method,
            url,
            route=route,
            attack="act in org B via X-Bifrost-Org",
            expect=REFUSED,
            json=body,
            params=_params(path),
        )
        _no_leak(response)
        LEDGER.hit(
            anonymous,
            method,
            url,
            route=route,
            attack="no credentials",
            expect=NO_CREDENTIALS,
            json=body,
            params=_params(path),
        )
    _bob_data_intact(world, victim)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_config_of_another_org(world: World, victim: Victim, alice: httpx.Client, prefix: str) -> None:
    hit = LEDGER.hit
    listing = hit(alice, "GET", f"{prefix}/config", route="/config", attack="list own", expect={200})
    assert "b_plain" not in listing.json() and "b_secret" not in listing.json()
    _no_leak(listing)
    for key in ("b_plain", "b_secret"):
        hit(alice, "GET", f"{prefix}/config/{key}", route="/config/{key:str}", attack="read B key", expect={404})
        gone = hit(
            alice,
            "DELETE",
            f"{prefix}/config/{key}",
            route="/config/{key:str}",
            attack="delete B key",
            expect={200, 404},
        )
        if gone.status_code == 200:
            assert gone.json() == {"deleted": False}
    for method in ("GET", "PUT", "DELETE"):
        body = {"value": "pwned"} if method == "PUT" else None
        hit(
            alice,
            method,
            f"{prefix}/config/b_plain",
            route="/config/{key:str}",
            attack="org_id=B parameter",
            expect=REFUSED,
            params={"org_id": world.org_b},
            json=body,
        )
    hit(
        alice,
        "GET",
        f"{prefix}/config",
        route="/config",
        attack="org_id=B parameter",
        expect=REFUSED,
        params={"org_id": world.org_b},
    )
    # Global: readable as the fallback, never writable by a non-admin.
    assert (
        hit(
            alice, "GET", f"{prefix}/config/g_plain", route="/config/{key:str}", attack="read global", expect={200}
        ).json()["value"]
        == "global-value"
    )
    for org_id in ("GLOBAL", "global"):
        hit(
            alice,
            "PUT",
            f"{prefix}/config/g_plain",
            route="/config/{key:str}",
            attack=f"write global (org_id={org_id})",
            expect=REFUSED | {422},
            params={"org_id": org_id},
            json={"value": "pwned"},
        )
        hit(
            alice,
            "DELETE",
            f"{prefix}/config/g_plain",
            route="/config/{key:str}",
            attack=f"delete global (org_id={org_id})",
            expect=REFUSED | {422},
            params={"org_id": org_id},
        )
    _bob_data_intact(world, victim)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_tables_of_another_org(world: World, victim: Victim, alice: httpx.Client, prefix: str) -> None:
    hit = LEDGER.hit
    table = f"{prefix}/tables/b_table"
    doc = f"{table}/documents/b-doc"
    scope_b = {"scope": world.org_b}
    # Own scope: org B's table is invisible by name.
    names = [
        t["name"]
        for t in hit(alice, "GET", f"{prefix}/tables", route="/tables", attack="list own", expect={200}).json()
    ]
    assert "b_table" not in names
    assert (
        hit(
            alice,
            "GET",
            doc,
            route="/tables/{table:str}/documents/{doc_id:str}",
            attack="read B doc by id",
            expect={404},
        ).status_code
        == 404
    )
    found = hit(
        alice,
        "POST",
        f"{table}/query",
        route="/tables/{table:str}/query",
        attack="query B table by name",
        expect={200},
        json={},
    )
    assert found.json()["documents"] == []
    counted = hit(
        alice,
        "POST",
        f"{table}/count",
        route="/tables/{table:str}/count",
        attack="count B table by name",
        expect={200},
        json={},
    )
    assert counted.json()["count"] == 0
    hit(
        alice,
        "PATCH",
        doc,
        route="/tables/{table:str}/documents/{doc_id:str}",
        attack="update B doc by id",
        expect={404},
        json={"data": {"owner": "alice"}},
    )
    gone = hit(
        alice,
        "DELETE",
        doc,
        route="/tables/{table:str}/documents/{doc_id:str}",
        attack="delete B doc by id",
        expect={200, 404},
    )
    if gone.status_code == 200:
        assert gone.json() == {"deleted": False}
    dropped = hit(alice, "DELETE", table, route="/tables/{name:str}", attack="drop B table by name", expect={200, 404})
    if dropped.status_code == 200:
        assert dropped.json() == {"deleted": False}
    # scope=<org B>: refused on every route.
    attempts = [
        ("GET", f"{prefix}/tables", "/tables", None),
        ("POST", f"{prefix}/tables", "/tables", {"name": "b_table"}),
        ("DELETE", table, "/tables/{name:str}", None),
        ("POST", f"{table}/documents", "/tables/{table:str}/documents", {"data": {"x": 1}}),
        ("PUT", doc, "/tables/{table:str}/documents/{doc_id:str}", {"data": {"owner": "alice"}}),
        ("GET", doc, "/tables/{table:str}/documents/{doc_id:str}", None),
        ("PATCH", doc, "/tables/{table:str}/documents/{doc_id:str}", {"data": {"owner": "alice"}}),
        ("DELETE", doc, "/tables/{table:str}/documents/{doc_id:str}", None),
        ("POST", f"{table}/query", "/tables/{table:str}/query", {}),
        ("POST", f"{table}/count", "/tables/{table:str}/count", {}),
    ]
    for method, url, route, body in attempts:
        _no_leak(
            hit(alice, method, url, route=route, attack="scope=B parameter", expect=REFUSED, params=scope_b, json=body)
        )
    # Global tables are read-only for users.
    hit(
        alice,
        "POST",
        f"{prefix}/tables/g_table/documents",
        route="/tables/{table:str}/documents",
        attack="write global table",
        expect=REFUSED,
        params={"scope": "global"},
        json={"data": {"x": 1}},
    )
    _bob_data_intact(world, victim)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_files_of_another_org(world: World, victim: Victim, alice: httpx.Client, prefix: str) -> None:
    hit = LEDGER.hit
    escapes = [
        "b/file.txt",  # the same path in her own org: a different file
        f"../{world.org_b}/workspace/b/file.txt",
        f"../../{world.org_b}/workspace/b/file.txt",
        f"/{world.org_b}/workspace/b/file.txt",
        f"..\\..\\{world.org_b}\\workspace\\b\\file.txt",
        "b/../../../etc/passwd",
        "b/file.txt\x00.png",
    ]
    for location in ("workspace", "temp", "uploads"):
        for path in escapes:
            params = {"path": path, "location": location}
            attack = f"path {path!r} in {location}"
            _no_leak(
                hit(
                    alice,
                    "GET",
                    f"{prefix}/files/content",
                    route="/files/content",
                    attack=attack,
                    expect={400, 403, 404, 422},
                    params=params,
                )
            )
            exists = hit(
                alice,
                "GET",
                f"{prefix}/files/exists",
                route="/files/exists",
                attack=attack,
                expect={200, 400, 403, 422},
                params=params,
            )
            if exists.status_code == 200:
                assert exists.json() in (False, {"exists": False})
            hit(
                alice,
                "DELETE",
                f"{prefix}/files/content",
                route="/files/content",
                attack=attack,
                expect={400, 403, 404, 422},
                params=params,
            )
            if path != "b/file.txt":  # writing that path in her own organization is legitimate
                hit(
                    alice,
                    "PUT",
                    f"{prefix}/files/content",
                    route="/files/content",
                    attack=attack,
                    expect={400, 403, 422},
                    params=params,
                    content=b"alice",
                )
            listed = hit(
                alice,
                "GET",
                f"{prefix}/files/list",
                route="/files/list",
                attack=attack,
                expect={200, 400, 403, 404, 422},
                params={"directory": path.rsplit("/", 1)[0], "location": location},
            )
            _no_leak(listed)
    # Percent-encoded by hand in the raw URL (the server decodes it to ../../<org B>/...).
    raw = f"path=..%2F..%2F{world.org_b}%2Fworkspace%2Fb%2Ffile.txt&location=workspace"
    for method in ("GET", "DELETE"):
        _no_leak(
            hit(
                alice,
                method,
                f"{prefix}/files/content?{raw}",
                route="/files/content",
                attack="percent-encoded escape",
                expect={400, 403, 404, 422},
            )
        )
    hit(
        alice,
        "PUT",
        f"{prefix}/files/content?{raw}",
        route="/files/content",
        attack="percent-encoded escape",
        expect={400, 403, 422},
        content=b"alice",
    )
    for location in ("workspace", "temp"):
        listing = hit(
            alice,
            "GET",
            f"{prefix}/files/list",
            route="/files/list",
            attack="list own root",
            expect={200},
            params={"directory": "", "location": location},
        )
        assert "bob" not in listing.text
    _bob_data_intact(world, victim)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_forms_and_roles_of_another_org(world: World, victim: Victim, alice: httpx.Client, prefix: str) -> None:
    hit = LEDGER.hit
    listing = hit(alice, "GET", f"{prefix}/forms", route="/forms", attack="list own", expect={200})
    assert not {victim.form_auth, victim.form_role} & {f["id"] for f in listing.json()}
    for form_id in (victim.form_auth, victim.form_role):
        route = "/forms/{form_id:str}"
        hit(alice, "GET", f"{prefix}/forms/{form_id}", route=route, attack="read B form by id", expect={404})
        hit(
            alice,
            "PATCH",
            f"{prefix}/forms/{form_id}",
            route=route,
            attack="update B form",
            expect=REFUSED,
            json={"name": "pwned"},
        )
        hit(alice, "DELETE", f"{prefix}/forms/{form_id}", route=route, attack="delete B form", expect=REFUSED)
        hit(
            alice,
            "GET",
            f"{prefix}/forms/{form_id}/roles",
            route="/forms/{form_id:str}/roles",
            attack="read B form roles",
            expect=REFUSED,
        )
        hit(
            alice,
            "PUT",
            f"{prefix}/forms/{form_id}/roles",
            route="/forms/{form_id:str}/roles",
            attack="set B form roles",
            expect=REFUSED,
            json={"role_ids": []},
        )
    hit(
        alice,
        "POST",
        f"{prefix}/forms",
        route="/forms",
        attack="create form in org B",
        expect=REFUSED,
        json={"name": "x", "workflow_id": "add", "organization_id": world.org_b},
    )
    hit(
        alice,
        "GET",
        f"{prefix}/forms/default-schema",
        route="/forms/default-schema",
        attack="schema of a workflow",
        expect={200, 403},
        params={"workflow": "add"},
    )
    role = f"{prefix}/roles/{victim.role_id}"
    for method, url, route, body in [
        ("GET", f"{prefix}/roles", "/roles", None),
        ("POST", f"{prefix}/roles", "/roles", {"name": "pwned"}),
        ("GET", role, "/roles/{role_id:str}", None),
        ("PATCH", role, "/roles/{role_id:str}", {"name": "pwned"}),
        ("DELETE", role, "/roles/{role_id:str}", None),
        ("GET", f"{role}/forms", "/roles/{role_id:str}/forms", None),
        ("POST", f"{role}/forms", "/roles/{role_id:str}/forms", {"form_ids": [victim.form_auth]}),
        ("GET", f"{role}/users", "/roles/{role_id:str}/users", None),
        ("POST", f"{role}/users", "/roles/{role_id:str}/users", {"user_ids": [world.alice_id]}),
    ]:
        _no_leak(hit(alice, method, url, route=route, attack="non-admin on roles", expect=REFUSED, json=body))
    _bob_data_intact(world, victim)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_executions_workflows_and_admin_routes(world: World, victim: Victim, alice: httpx.Client, prefix: str) -> None:
    hit = LEDGER.hit
    runs = hit(alice, "GET", f"{prefix}/executions", route="/executions", attack="list own", expect={200})
    assert victim.execution_id not in runs.text
    for suffix, route in [
        ("", "/executions/{execution_id:str}"),
        ("/logs", "/executions/{execution_id:str}/logs"),
        ("/stream", "/executions/{execution_id:str}/stream"),
    ]:
        _no_leak(
            hit(
                alice,
                "GET",
                f"{prefix}/executions/{victim.execution_id}{suffix}",
                route=route,
                attack="B execution by id",
                expect={404},
            )
        )
    hit(
        alice,
        "POST",
        f"{prefix}/executions/{victim.execution_id}/cancel",
        route="/executions/{execution_id:str}/cancel",
        attack="cancel B execution",
        expect={404},
    )
    hit(
        alice,
        "GET",
        f"{prefix}/executions",
        route="/executions",
        attack="filter by org B",
        expect={200, 403, 422},
        params={"org_id": world.org_b},
    )
    hit(
        alice,
        "POST",
        f"{prefix}/workflows/add/execute",
        route="/workflows/{name:str}/execute",
        attack="run in org B",
        expect=REFUSED,
        json={"params": {"a": 1}, "org": world.org_b},
        params={"org": world.org_b},
    )
    hit(alice, "GET", f"{prefix}/workflows", route="/workflows", attack="list catalogue", expect={200})
    hit(alice, "GET", f"{prefix}/workflows/add", route="/workflows/{name:str}", attack="read workflow", expect={200})
    hit(alice, "GET", f"{prefix}/data-providers", route="/data-providers", attack="list providers", expect={200})
    admin_only = [
        ("GET", f"{prefix}/organizations/{world.org_b}", "/organizations/{org_id:str}", None),
        ("PATCH", f"{prefix}/organizations/{world.org_b}", "/organizations/{org_id:str}", {"name": "pwned"}),
        ("DELETE", f"{prefix}/organizations/{world.org_b}", "/organizations/{org_id:str}", None),
        ("POST", f"{prefix}/organizations", "/organizations", {"name": "pwned"}),
        ("GET", f"{prefix}/users", "/users", None),
        ("POST", f"{prefix}/users", "/users", {"email": "x@b.example", "name": "x", "org_id": world.org_b}),
        ("GET", f"{prefix}/users/{world.bob_id}", "/users/{user_id:str}", None),
        ("PATCH", f"{prefix}/users/{world.bob_id}", "/users/{user_id:str}", {"name": "pwned"}),
        ("DELETE", f"{prefix}/users/{world.bob_id}", "/users/{user_id:str}", None),
    ]
    for method, url, route, body in admin_only:
        _no_leak(hit(alice, method, url, route=route, attack="non-admin on admin route", expect=REFUSED, json=body))
    orgs = hit(alice, "GET", f"{prefix}/organizations", route="/organizations", attack="list orgs", expect={200, 403})
    if orgs.status_code == 200:
        assert "Org B" not in orgs.text
    if prefix == "/api":
        keys = hit(alice, "GET", "/api/api-keys", route="/api-keys", attack="list keys", expect={200, 403})
        assert victim.bob_key_id not in keys.text
        hit(
            alice,
            "POST",
            "/api/api-keys",
            route="/api-keys",
            attack="mint key with a key",
            expect=REFUSED,
            json={"name": "x", "organization_id": world.org_b},
        )
        hit(
            alice,
            "DELETE",
            f"/api/api-keys/{victim.bob_key_id}",
            route="/api-keys/{key_id:str}",
            attack="revoke B key",
            expect=REFUSED,
        )
        for method, path in [
            ("GET", "/api/workspace/errors"),
            ("GET", "/api/workspace/status"),
            ("POST", "/api/workspace/sync"),
        ]:
            hit(alice, method, path, route=path[4:], attack="non-admin workspace admin", expect=REFUSED)
    _bob_data_intact(world, victim)
    with world.server.client(world.bob_key) as bob:
        # bob's key still works: alice could not revoke it
        assert bob.get("/api/executions").status_code == 200


def test_logged_in_user_of_org_a_cannot_revoke_or_see_b_keys(world: World, victim: Victim) -> None:
    with browser_session(world, "alice@a.example", "alice-password") as alice:
        keys = LEDGER.hit(alice, "GET", "/api/api-keys", route="/api-keys", attack="session: list keys", expect={200})
        assert victim.bob_key_id not in keys.text
        LEDGER.hit(
            alice,
            "DELETE",
            f"/api/api-keys/{victim.bob_key_id}",
            route="/api-keys/{key_id:str}",
            attack="session: revoke B key",
            expect={404},
        )
        LEDGER.hit(
            alice,
            "POST",
            "/api/api-keys",
            route="/api-keys",
            attack="session: key for org B",
            expect=REFUSED | {422},
            json={"name": "x", "organization_id": world.org_b},
        )
    with world.server.client(world.bob_key) as bob:
        assert bob.get("/api/executions").status_code == 200


def test_from_inside_a_workflow_with_its_own_sdk_token(world: World, victim: Victim, alice: httpx.Client) -> None:
    run = alice.post(
        "/api/workflows/probe_other_org/execute?wait=true",
        json={
            "params": {
                "org_b": world.org_b,
                "execution_id": victim.execution_id,
                "form_id": victim.form_role,
                "role_id": victim.role_id,
            }
        },
    ).json()
    assert run["status"] == "Completed", run
    outcomes: dict[str, str] = run["result"]
    leaks = {name: outcome for name, outcome in outcomes.items() if outcome.startswith("LEAK")}
    assert not leaks, leaks
    # scope=<org B> and admin-only calls are refused outright, not just empty
    for name in ("tables.query scope=B", "tables.insert scope=B", "tables.delete scope=B", "roles.assign_forms"):
        assert outcomes[name].startswith("denied:PermissionDenied"), (name, outcomes[name])
    for name in ("executions.get", "forms.get"):
        assert outcomes[name] == "denied:NotFoundError", (name, outcomes[name])
    for name, outcome in outcomes.items():
        LEDGER.tried.add(("SDK", name, "from inside a workflow: " + outcome))
    _bob_data_intact(world, victim)


def test_every_route_was_attacked(world: World) -> None:
    """Runs last in this module: each route of the families above was attacked at least once."""
    attacked = {(method, path) for method, path, _ in LEDGER.tried}
    missing = [f"{m} {p}" for m, p in _routes(world) if (m, p) not in attacked]
    assert not missing, "routes never attacked:\n" + "\n".join(missing)
    summary = {
        "routes": len(_routes(world)),
        "route_attack_pairs": len(LEDGER.tried),
    }
    print("\nisolation attacks:", json.dumps(summary))


# ----- helpers -------------------------------------------------------------------------------------
def _routes(world: World) -> list[tuple[str, str]]:
    """(method, path template) of every route in the families, under both prefixes."""
    from app.web.app import create_app

    app = create_app(world.server.settings, world.server.platform, start_platform=False)
    found = set()
    for route in app.routes:
        for prefix in PREFIXES:
            rest = route.path[len(prefix) :] if route.path.startswith(prefix + "/") else None
            if rest is None or (prefix == "/api" and route.path.startswith("/api/sdk/")):
                continue
            if not rest.startswith(FAMILIES):
                continue
            for method in getattr(route, "methods", ()):
                if method not in {"OPTIONS", "HEAD"}:
                    found.add((method, route.path))
    return sorted(found)


def _fill(path: str, victim: Victim) -> str:
    values = {
        "name": "add",
        "execution_id": victim.execution_id,
        "org_id": "placeholder",
        "user_id": "placeholder",
        "role_id": victim.role_id,
        "key_id": victim.bob_key_id,
        "key": "b_plain",
        "table": "b_table",
        "doc_id": "b-doc",
        "form_id": victim.form_role,
    }
    return re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], path)


def _params(path: str) -> dict[str, str] | None:
    if "/files/" in path:
        return {"path": "b/file.txt", "location": "workspace", "directory": "b"}
    if path.endswith("/forms/default-schema"):
        return {"workflow": "add"}
    return None
