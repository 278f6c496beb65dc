"""Attack: a technician reads secrets in plaintext through a notebook run's SDK token.

``POST /api/notebook-runs`` hands back a per-execution SDK token, and the code that uses it is the
caller's own (a kernel), not a workflow of the workspace. So only platform admins and users holding
a role that grants authoring (``can_author``) may start one, and its token reads secrets, integration
secrets and OAuth tokens in clear only when its user may read them (platform admins); everyone else
gets the mask, as with an API key. Workflows the platform runs still read them in clear.

Over real HTTP against a live server: technicians (API keys, a browser session) are refused, an
author may start a run, and what each token reads is checked. The module prints how many attempts
it made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bifrost._schema import infer_parameters
from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.platform.authoring_support import make_author
from tests.platform.conftest import World, browser_session, start_world
from tests.platform.integrations_support import connect, define, map_org, sha

MASK = "********"
GLOBAL_SECRET, ORG_SECRET, AI_KEY = "global-plain-secret", "org-a-plain-secret", "sk-provider-plain-key"


async def _trial(name: str) -> None:
    """A notebook workflow.

    Args:
        name: Who.
    """


SCHEMA: dict[str, Any] = infer_parameters(_trial, kind="workflow")[2]
ATTEMPTS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _count() -> Iterator[None]:
    yield
    print(f"\nnotebook-runs attack: {len(ATTEMPTS)} attempts")


@dataclass
class Site:
    """The live server, an author of Org A and the integration set up for Org A."""

    world: World
    author_key: str
    integration: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    world = start_world(tmp_path_factory.mktemp("notebook-attack"))
    try:
        with world.server.client(world.admin_key) as admin:
            assert (
                admin.put("/api/config/g_secret", json={"value": GLOBAL_SECRET, "is_secret": True}).status_code == 200
            )
            assert (
                admin.put("/api/config/ai_provider_key", json={"value": AI_KEY, "is_secret": True}).status_code == 200
            )
            settings = {"model": "openai:gpt-4o-mini", "api_key_config": "ai_provider_key"}
            assert admin.put("/api/ai/settings", json=settings).status_code == 200
            carol = admin.post(
                "/api/users",
                json={"email": "carol@a.example", "name": "Carol", "org_id": world.org_a, "password": "carol-password"},
            )
            assert carol.status_code == 201, carol.text
        with world.server.client(world.admin_key, **{"X-Bifrost-Org": world.org_a}) as admin_a:
            secret = {"value": ORG_SECRET, "is_secret": True}
            assert admin_a.put("/api/config/a_secret", json=secret).status_code == 200
            assert admin_a.put("/api/config/a_plain", json={"value": "plain-a"}).status_code == 200
        with FakeOAuthProvider() as provider:
            integration = define(world, provider)["name"]
            map_org(world, integration, "Org A", entity_id="tenant-a", config={"api_secret": "org-a-api-secret"})
            connect(world, integration, "Org A")
        make_author(world, carol.json()["id"], world.org_a)
        with browser_session(world, "carol@a.example", "carol-password") as browser:
            created = browser.post("/api/api-keys", json={"name": "carol notebook"})
            assert created.status_code == 201, created.text
        yield Site(world=world, author_key=created.json()["key"], integration=integration)
    finally:
        world.server.stop()


def start(client: httpx.Client, **body: Any) -> httpx.Response:
    """``POST /api/notebook-runs`` for a trial of ``_trial``."""
    ATTEMPTS.append(f"start as {client.headers.get('Authorization', 'session')[:14]}")
    payload = {"name": "trial", "params": {"name": "Ada"}, "params_schema": SCHEMA, **body}
    return client.post("/api/notebook-runs", json=payload)


def refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    detail = response.json().get("detail", "")
    assert "author" in detail and "notebook" in detail, detail


def test_technicians_cannot_start_notebook_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A fresh world: no role grants authoring, so only the platform admin may start runs.
    world = start_world(tmp_path_factory.mktemp("notebook-technicians"))
    try:
        for key in (world.alice_key, world.bob_key):  # unrestricted API keys of technicians
            with world.server.client(key) as technician:
                refused(start(technician))
                refused(start(technician, kind="data_provider"))
        with browser_session(world, "alice@a.example", "alice-password") as browser:
            refused(start(browser))
        with world.server.client(world.admin_key) as admin:
            assert admin.get("/api/executions", params={"workflow_name": "trial"}).json() == []
            assert start(admin).status_code == 201
    finally:
        world.server.stop()


def test_a_technician_stays_refused_beside_an_author(site: Site) -> None:
    with site.world.server.client(site.world.alice_key) as alice:
        refused(start(alice))
    with site.world.server.client(site.world.bob_key) as bob:
        refused(start(bob, org="Org A"))


def sdk_get(site: Site, token: str, path: str, **params: str) -> dict[str, Any]:
    ATTEMPTS.append(f"read {path}")
    with site.world.server.client(token) as sdk:
        response = sdk.get(f"/api/sdk/v1{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def finish(client: httpx.Client, run: dict[str, Any]) -> None:
    done = client.post(f"/api/notebook-runs/{run['execution_id']}/finish", json={"status": "Completed"})
    assert done.status_code == 200, done.text


def test_an_author_may_start_a_run_but_its_token_reads_secrets_masked(site: Site) -> None:
    with site.world.server.client(site.author_key) as author:
        response = start(author)
        assert response.status_code == 201, response.text
        run = response.json()
        assert run["context"]["org_id"] == site.world.org_a and run["sdk_token"].startswith("bfx_")
        token = run["sdk_token"]
        for key in ("a_secret", "g_secret", "ai_provider_key"):
            entry = sdk_get(site, token, f"/config/{key}")
            assert entry["value"] == MASK and entry["masked"] is True, entry
        assert sdk_get(site, token, "/config/a_plain")["value"] == "plain-a"  # plain values as usual
        data = sdk_get(site, token, f"/integrations/{site.integration}")
        assert data["config"]["api_secret"] == MASK, data
        assert data["oauth"]["access_token"] == MASK and data["oauth"]["masked"] is True, data
        assert data["oauth"]["refresh_token"] in (MASK, None)
        for value in (ORG_SECRET, GLOBAL_SECRET, AI_KEY, "org-a-api-secret", "default-secret-1"):
            assert value not in str(data)
        finish(author, run)


def test_a_platform_admins_notebook_token_reads_secrets_in_clear(site: Site) -> None:
    with site.world.server.client(site.world.admin_key) as admin:
        run = start(admin).json()  # global
        assert sdk_get(site, run["sdk_token"], "/config/g_secret")["value"] == GLOBAL_SECRET
        finish(admin, run)
        run = start(admin, org="Org A").json()
        token = run["sdk_token"]
        assert sdk_get(site, token, "/config/a_secret")["value"] == ORG_SECRET
        data = sdk_get(site, token, f"/integrations/{site.integration}")
        assert data["config"]["api_secret"] == "org-a-api-secret" and data["oauth"]["masked"] is False
        finish(admin, run)


def test_workflows_the_platform_runs_still_read_secrets(site: Site) -> None:
    # A technician's run of a workspace workflow: trusted code, secrets in clear (redacted from output).
    with site.world.server.client(site.world.alice_key) as alice:
        ATTEMPTS.append("workflow config_get")
        response = alice.post("/api/workflows/config_get/execute?wait=true", json={"params": {"key": "a_secret"}})
    execution = response.json()
    assert execution["status"] == "Completed", execution
    assert execution["result"]["sha256"] == sha(ORG_SECRET)
