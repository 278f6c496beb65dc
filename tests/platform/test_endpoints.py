"""HTTP endpoints over real HTTP: methods, parameters, auth, public access and its rate limit, modes, limits."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.identity.system_users import PUBLIC_ENDPOINT
from tests.conftest import PLATFORM_WORKSPACE, LiveServer, make_settings
from tests.platform.conftest import World, seed, start_world

# Endpoints that fail on purpose stay out of the shared workspace (the API fuzz test calls every endpoint).
FAILING_FLOWS = '''
import asyncio

from bifrost import UserError, workflow


@workflow(endpoint_enabled=True)
async def endpoint_refuses() -> None:
    """Raise a user-facing error."""
    raise UserError("The mailbox is full; ask IT to raise the quota.")


@workflow(endpoint_enabled=True)
async def endpoint_crashes() -> None:
    """Raise an unexpected error."""
    raise KeyError("secret internal detail")


@workflow(endpoint_enabled=True, timeout_seconds=1)
async def endpoint_too_slow() -> None:
    """Outlive its timeout."""
    await asyncio.sleep(30)
'''

RATE_LIMIT = 5
BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A seeded live server with a small public rate limit and body limit, plus failing endpoints."""
    tmp = tmp_path_factory.mktemp("endpoints")
    workspace = tmp / "workspace"
    shutil.copytree(PLATFORM_WORKSPACE, workspace)
    (workspace / "failing_endpoints.py").write_text(FAILING_FLOWS)
    settings = make_settings(
        tmp,
        workspace=workspace,
        public_endpoint_rate_limit_per_minute=RATE_LIMIT,
        endpoint_max_body_bytes=BODY_LIMIT,
    )
    server = LiveServer(settings).start()
    world = World(server=server, **server.call(lambda: seed(server.platform)))
    try:
        yield world
    finally:
        server.stop()


def client_from(world: World, address: str, token: str | None = None) -> httpx.Client:
    """A client whose requests come from another loopback address (its own rate-limit bucket)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=world.server.url, headers=headers, timeout=30, transport=transport)


def execution(world: World, execution_id: str) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        response = admin.get(f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return response.json()


def count_runs(world: World, workflow: str) -> int:
    with world.server.client(world.admin_key) as admin:
        return len(admin.get("/api/executions", params={"workflow_name": workflow, "limit": 1000}).json())


def wait_finished(world: World, execution_id: str) -> dict[str, Any]:
    for _ in range(300):
        found = execution(world, execution_id)
        if found["status"] in ("Completed", "Failed", "Cancelled"):
            return found
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish")


# ----- calling ----------------------------------------------------------------------------------------
def test_a_sync_post_answers_the_result_and_records_an_endpoint_execution(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        response = alice.post("/api/endpoints/endpoint_echo", json={"name": "Ada", "count": 2, "tags": ["x"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "Ada", "count": 2, "tags": ["x"], "excited": False}
    recorded = execution(ep, response.headers["X-Bifrost-Execution-Id"])
    assert recorded["trigger"] == "endpoint"
    assert recorded["executed_by"] == ep.alice_id and recorded["org_id"] == ep.org_a
    assert recorded["status"] == "Completed" and recorded["input_data"]["name"] == "Ada"


def test_get_takes_typed_parameters_and_repeated_list_values_from_the_query_string(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        response = alice.get(
            "/api/endpoints/endpoint_echo",
            params=[("name", "Grace"), ("count", "3"), ("tags", "a"), ("tags", "b"), ("excited", "true")],
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"name": "Grace", "count": 3, "tags": ["a", "b"], "excited": True}
        as_json_list = alice.get("/api/endpoints/endpoint_echo", params={"name": "G", "tags": '["p", "q"]'})
        assert as_json_list.json()["tags"] == ["p", "q"]


def test_post_takes_form_bodies_and_the_query_string_and_the_body_wins(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        urlencoded = alice.post("/api/endpoints/endpoint_echo", data={"name": "Form", "count": "4"})
        assert urlencoded.status_code == 200, urlencoded.text
        assert urlencoded.json()["count"] == 4
        upload = alice.post(
            "/api/endpoints/endpoint_echo", data={"name": "Multi"}, files={"attachment": ("a.txt", b"hello")}
        )
        assert upload.status_code == 422
        assert upload.json()["extra"]["errors"][0]["field"] == "attachment"
        assert "file uploads are not accepted" in upload.json()["detail"]
        multipart = alice.post(
            "/api/endpoints/endpoint_echo",
            content=b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nMulti\r\n--XyZ--\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert multipart.status_code == 200, multipart.text
        assert multipart.json()["name"] == "Multi"
        from_query = alice.post("/api/endpoints/endpoint_echo", params={"name": "Query", "count": "5"})
        assert from_query.json()["name"] == "Query" and from_query.json()["count"] == 5
        both = alice.put("/api/endpoints/endpoint_echo", params={"name": "Query", "count": "5"}, json={"name": "Body"})
        assert both.json() == {"name": "Body", "count": 5, "tags": [], "excited": False}
        nested = alice.post("/api/endpoints/endpoint_place", json={"place": {"city": "Oslo"}, "day": "2026-03-01"})
        assert nested.json() == {"city": "Oslo", "zip_code": None, "day": "2026-03-01"}


def test_bad_parameters_get_422_naming_each_field_and_nothing_runs(ep: World) -> None:
    before = count_runs(ep, "endpoint_echo")
    with ep.server.client(ep.alice_key) as alice:
        response = alice.post("/api/endpoints/endpoint_echo", json={"count": "many", "colour": "red"})
        assert response.status_code == 422, response.text
        fields = {e["field"]: e["message"] for e in response.json()["extra"]["errors"]}
        assert fields["name"] == "this parameter is required"
        assert "integer" in fields["count"] and fields["colour"] == "unknown parameter"
        repeated = alice.get("/api/endpoints/endpoint_echo", params=[("name", "a"), ("name", "b")])
        assert repeated.status_code == 422
        assert repeated.json()["extra"]["errors"] == [
            {"field": "name", "message": "given 2 times; this parameter takes one value"}
        ]
        not_an_object = alice.post("/api/endpoints/endpoint_echo", json=["Ada"])
        assert not_an_object.status_code == 422 and not_an_object.json()["extra"]["errors"][0]["field"] == "body"
        bad_nested = alice.post("/api/endpoints/endpoint_place", json={"place": {"zip_code": "1"}, "day": "soon"})
        assert {e["field"] for e in bad_nested.json()["extra"]["errors"]} == {"place.city", "day"}
    assert count_runs(ep, "endpoint_echo") == before


def test_malformed_json_is_400_and_other_media_types_are_415(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        broken = alice.post(
            "/api/endpoints/endpoint_echo", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
        text = alice.post("/api/endpoints/endpoint_echo", content=b"name=Ada", headers={"Content-Type": "text/plain"})
        assert text.status_code == 415 and "text/plain" in text.json()["detail"]


def test_bodies_over_the_limit_are_413_whether_announced_or_chunked(ep: World) -> None:
    before = count_runs(ep, "endpoint_echo")
    big = {"name": "x" * (BODY_LIMIT + 10)}
    with ep.server.client(ep.alice_key) as alice:
        announced = alice.post("/api/endpoints/endpoint_echo", json=big)
        assert announced.status_code == 413 and str(BODY_LIMIT) in announced.json()["detail"]

        def chunks() -> Iterator[bytes]:  # a generator body is sent chunked, without Content-Length
            yield b'{"name": "'
            for _ in range(BODY_LIMIT // 100 + 1):
                yield b"y" * 100
            yield b'"}'

        chunked = alice.post(
            "/api/endpoints/endpoint_echo", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        just_under = alice.post("/api/endpoints/endpoint_echo", json={"name": "x" * (BODY_LIMIT - 100)})
        assert just_under.status_code == 200
    assert count_runs(ep, "endpoint_echo") == before + 1


def test_methods_outside_allowed_methods_get_405_with_allow(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        delete = alice.delete("/api/endpoints/endpoint_echo")
        assert delete.status_code == 405
        assert delete.headers["Allow"] == "GET, POST, PUT, PATCH"
        get = alice.get("/api/endpoints/endpoint_noop")  # the default is POST only
        assert get.status_code == 405 and get.headers["Allow"] == "POST"
        assert "accepts POST, not GET" in get.json()["detail"]


def test_workflows_without_endpoint_and_unknown_names_are_404_and_anonymous_callers_learn_nothing(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        assert alice.post("/api/endpoints/add", json={"a": 1}).status_code == 404
        assert alice.post("/api/endpoints/no_such_workflow").status_code == 404
    with ep.server.client() as anonymous:
        for name in ("add", "no_such_workflow", "endpoint_echo"):
            response = anonymous.post(f"/api/endpoints/{name}", json={"name": "x"})
            assert response.status_code == 401, name
            assert response.headers["WWW-Authenticate"] == "Bearer"


# ----- authentication ---------------------------------------------------------------------------------
def test_api_keys_by_either_header_run_in_the_keys_organization(ep: World) -> None:
    with ep.server.client() as bob:
        response = bob.post("/api/endpoints/endpoint_whoami", headers={"X-Bifrost-Key": ep.bob_key})
    assert response.status_code == 200, response.text
    assert response.json()["org_id"] == ep.org_b and response.json()["email"] == "bob@b.example"
    assert response.json()["is_function_key"] is True
    with ep.server.client(ep.admin_key) as admin:
        in_b = admin.post("/api/endpoints/endpoint_whoami", headers={"X-Bifrost-Org": "Org B"})
        assert in_b.json()["org_id"] == ep.org_b and in_b.json()["is_platform_admin"] is True
    with ep.server.client("bfk_not_a_real_key") as wrong:
        assert wrong.post("/api/endpoints/endpoint_whoami").status_code == 401


def test_a_key_limited_to_one_workflow_calls_only_that_endpoint(ep: World) -> None:
    from tests.platform.conftest import browser_session

    with browser_session(ep, "alice@a.example", "alice-password") as alice:
        created = alice.post("/api/api-keys", json={"name": "echo only", "workflow_id": "endpoint_echo"})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
    with ep.server.client(key) as limited:
        assert limited.post("/api/endpoints/endpoint_echo", json={"name": "ok"}).status_code == 200
        refused = limited.post("/api/endpoints/endpoint_whoami")
        assert refused.status_code == 403 and "may not run this workflow" in refused.json()["detail"]


# ----- public endpoints --------------------------------------------------------------------------------
def test_a_public_endpoint_needs_no_key_and_runs_as_the_public_account_in_global_scope(ep: World) -> None:
    with client_from(ep, "127.0.0.2") as anonymous:
        response = anonymous.get("/api/endpoints/endpoint_public", params={"message": "hi"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "hi"
    assert body["context"] == {
        "user_id": PUBLIC_ENDPOINT.id,
        "email": "public-endpoint@bifrost.invalid",
        "name": "Public endpoint",
        "org_id": None,
        "scope": "GLOBAL",
        "is_platform_admin": False,
        "is_function_key": False,
    }
    recorded = execution(ep, response.headers["X-Bifrost-Execution-Id"])
    assert recorded["trigger"] == "endpoint" and recorded["executed_by"] == PUBLIC_ENDPOINT.id


def test_public_endpoints_are_rate_limited_per_client_address(ep: World) -> None:
    with client_from(ep, "127.0.0.3") as first, client_from(ep, "127.0.0.4") as second:
        statuses = [first.post("/api/endpoints/endpoint_public").status_code for _ in range(RATE_LIMIT)]
        assert statuses == [200] * RATE_LIMIT
        limited = first.post("/api/endpoints/endpoint_public")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert "try again in" in limited.json()["detail"]
        assert second.post("/api/endpoints/endpoint_public").status_code == 200  # its own budget


def test_deactivating_the_public_account_switches_public_endpoints_off(ep: World) -> None:
    with client_from(ep, "127.0.0.5") as anonymous, ep.server.client(ep.admin_key) as admin:
        assert anonymous.get("/api/endpoints/endpoint_public").status_code == 200
        assert admin.patch(f"/api/users/{PUBLIC_ENDPOINT.id}", json={"is_active": False}).status_code == 200
        try:
            off = anonymous.get("/api/endpoints/endpoint_public")
            assert off.status_code == 403 and "switched off" in off.json()["detail"]
        finally:
            admin.patch(f"/api/users/{PUBLIC_ENDPOINT.id}", json={"is_active": True})
        assert anonymous.get("/api/endpoints/endpoint_public").status_code == 200


# ----- execution modes and failures ---------------------------------------------------------------------
def test_async_mode_answers_202_with_a_status_url_to_poll(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        response = alice.post("/api/endpoints/endpoint_async", json={"value": 7})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status_url"] == f"/api/executions/{body['execution_id']}"
        assert response.headers["Location"] == body["status_url"]
        for _ in range(300):
            polled = alice.get(body["status_url"]).json()
            if polled["status"] == "Completed":
                break
            time.sleep(0.05)
        assert polled["status"] == "Completed" and polled["result"] == {"value": 7}


def test_auto_mode_is_sync_unless_the_caller_prefers_async_and_explicit_sync_always_waits(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        waited = alice.post("/api/endpoints/endpoint_echo", json={"name": "a"})
        assert waited.status_code == 200
        deferred = alice.post(
            "/api/endpoints/endpoint_echo", json={"name": "a"}, headers={"Prefer": "wait=5, respond-async"}
        )
        assert deferred.status_code == 202 and deferred.headers["Preference-Applied"] == "respond-async"
        assert wait_finished(ep, deferred.json()["execution_id"])["result"]["name"] == "a"
        strict = alice.post("/api/endpoints/endpoint_strict_sync", headers={"Prefer": "respond-async"})
        assert strict.status_code == 200 and strict.json() == "done"
        assert "Preference-Applied" not in strict.headers


def test_failures_answer_an_error_body_with_the_execution_id(ep: World) -> None:
    with ep.server.client(ep.alice_key) as alice:
        refused = alice.post("/api/endpoints/endpoint_refuses")
        assert refused.status_code == 422
        body = refused.json()
        assert body["detail"] == "The mailbox is full; ask IT to raise the quota."
        assert body["status"] == "Failed" and body["execution_id"] == refused.headers["X-Bifrost-Execution-Id"]
        assert body["status_url"] == f"/api/executions/{body['execution_id']}"

        crashed = alice.post("/api/endpoints/endpoint_crashes")
        assert crashed.status_code == 500
        assert "secret internal detail" not in crashed.text  # members see a generic message
        assert execution(ep, crashed.json()["execution_id"])["error_type"] == "KeyError"

        timed_out = alice.post("/api/endpoints/endpoint_too_slow")
        assert timed_out.status_code == 504 and timed_out.json()["error_type"] == "TimeoutError"


# ----- OpenAPI ----------------------------------------------------------------------------------------
def test_the_openapi_document_lists_each_endpoint_with_its_parameter_schema(ep: World) -> None:
    with ep.server.client(ep.alice_key) as member:  # anonymous callers see public endpoints only (test_attack_web)
        document = member.get("/schema/openapi.json").json()
    paths = document["paths"]
    assert "/api/endpoints/add" not in paths and "/api/endpoints/{name}" not in paths
    echo = paths["/api/endpoints/endpoint_echo"]
    assert set(echo) == {"get", "post", "put", "patch"}
    query = {p["name"]: p for p in echo["get"]["parameters"] if p["in"] == "query"}
    assert set(query) == {"name", "count", "tags", "excited"}
    assert query["name"]["required"] is True and query["count"]["schema"]["type"] == "integer"
    assert query["name"]["description"] == "Who to greet."
    assert any(p["name"] == "Prefer" and p["in"] == "header" for p in echo["get"]["parameters"])
    body = echo["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["name"] and set(body["properties"]) == {"name", "count", "tags", "excited"}
    assert echo["post"]["security"] == [{"BifrostBearer": []}, {"BifrostKey": []}]
    place = paths["/api/endpoints/endpoint_place"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = place["properties"]["place"]["$ref"]
    assert ref.startswith("#/components/schemas/")
    assert document["components"]["schemas"][ref.rsplit("/", 1)[1]]["required"] == ["city"]
    assert paths["/api/endpoints/endpoint_public"]["get"]["security"] == []
    assert "parameters" not in paths["/api/endpoints/endpoint_async"]["post"]  # explicit mode: no Prefer


def test_the_openapi_document_follows_workspace_changes(ep: World) -> None:
    workspace = ep.server.settings.workspace
    (workspace / "late_endpoint.py").write_text(
        "from bifrost import workflow\n\n\n"
        "@workflow(endpoint_enabled=True, allowed_methods=['GET'])\n"
        "async def endpoint_late(n: int) -> int:\n    return n * 2\n"
    )
    try:
        with ep.server.client(ep.admin_key) as admin:
            assert admin.post("/api/workspace/sync").status_code == 200
            document = admin.get("/schema/openapi.json").json()
            assert "/api/endpoints/endpoint_late" in document["paths"]
            assert admin.get("/api/endpoints/endpoint_late", params={"n": 21}).json() == 42
    finally:
        (workspace / "late_endpoint.py").unlink()
        with ep.server.client(ep.admin_key) as admin:
            admin.post("/api/workspace/sync")
            assert "/api/endpoints/endpoint_late" not in admin.get("/schema/openapi.json").json()["paths"]


# ----- each database ------------------------------------------------------------------------------------
def test_endpoints_on_each_database(database_url: str, tmp_path: Path) -> None:
    world = start_world(tmp_path, database_url)
    try:
        with world.server.client(world.alice_key) as alice, world.server.client() as anonymous:
            assert alice.post("/api/endpoints/endpoint_echo", json={"name": "db"}).json()["name"] == "db"
            assert anonymous.post("/api/endpoints/endpoint_public", json={"message": "m"}).json()["message"] == "m"
            accepted = alice.post("/api/endpoints/endpoint_async", json={"value": 1})
            assert accepted.status_code == 202
            assert wait_finished(world, accepted.json()["execution_id"])["result"] == {"value": 1}
    finally:
        world.server.stop()
