"""The HTTP client of the SDK (``bifrost._client``) and what the modules send through it."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import weakref
from typing import Any

import httpx
import pytest
from conftest import LoopbackServer, Recorder
from pydantic import BaseModel

import bifrost
from bifrost import (
    ConfigurationError,
    ExecutionStatus,
    IntegrationError,
    UserError,
    ValidationError,
    WorkflowError,
    _client,
    ai,
    config,
    executions,
    files,
    integrations,
    organizations,
    tables,
    users,
    workflows,
)
from bifrost._context import PlatformConnection, bind_context
from bifrost.errors import NoSuchFileError, NotAvailableError, NotFoundError, PermissionDeniedError
from bifrost.testing import make_context

ORG = {"id": "o1", "name": "Acme", "is_active": True, "domain": None}
USER = {"id": "u1", "email": "a@b.c", "name": "A", "organization_id": "o1", "is_active": True, "is_superuser": False}
EXECUTION = {
    "execution_id": "e1", "workflow_name": "wf", "org_id": "o1", "executed_by": "u1", "status": "Completed",
    "input_data": {}, "result": {"ok": True}, "error_message": None, "duration_ms": 12,
    "started_at": "2024-01-01T00:00:00Z", "completed_at": "2024-01-01T00:00:01Z",
}  # fmt: skip
DOC = {"id": "d1", "table_id": "t1", "data": {"a": 1}, "created_at": "2024-01-01T00:00:00Z",
       "updated_at": "2024-01-01T00:00:00Z"}  # fmt: skip


# --- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_permission_denied(platform: Recorder, status: int) -> None:
    platform.add("GET", "/organizations", status, {"detail": "platform admins only"})
    with pytest.raises(PermissionDeniedError, match="platform admins only") as info:
        await organizations.list()
    assert isinstance(info.value, WorkflowError)


async def test_not_found(platform: Recorder) -> None:
    platform.add("GET", "/organizations/o404", 404, {"detail": "organization not found"})
    with pytest.raises(NotFoundError, match="organization not found"):
        await organizations.get("o404")


async def test_not_found_means_none_or_default_where_the_spec_says_so(platform: Recorder) -> None:
    for path in ("/users/u404", "/config/missing", "/integrations/Halo", "/tables/t/documents/d404"):
        platform.add("GET", path, 404, {"detail": "nope"})
    platform.add("PATCH", "/tables/t/documents/d404", 404, {"detail": "nope"})
    platform.add("DELETE", "/tables/t/documents/d404", 404, {"detail": "nope"})
    assert await users.get("u404") is None
    assert await config.get("missing") is None
    assert await config.get("missing", default="fallback") == "fallback"
    assert await integrations.get("Halo") is None
    assert await tables.get("t", "d404") is None
    assert await tables.update("t", "d404", {"a": 1}) is None
    assert await tables.delete_document("t", "d404") is False


async def test_users_get_returns_the_model(platform: Recorder) -> None:
    platform.add("GET", "/users/u1", 200, USER)
    user = await users.get("u1")
    assert isinstance(user, bifrost.UserPublic) and user.email == "a@b.c"


@pytest.mark.parametrize(
    "body",
    [
        {
            "status_code": 422,
            "detail": "Invalid input",
            "extra": {"errors": [{"field": "name", "message": "required"}]},
        },
        {"status_code": 422, "detail": "Invalid input", "extra": [{"field": "name", "message": "required"}]},
        {"detail": "Invalid input", "errors": [{"field": "name", "message": "required"}]},
    ],
    ids=["litestar-extra-dict", "litestar-extra-list", "top-level-errors"],
)
async def test_422_is_a_validation_error_with_field_errors(platform: Recorder, body: dict[str, Any]) -> None:
    platform.add("POST", "/organizations", 422, body)
    with pytest.raises(ValidationError, match="Invalid input") as info:
        await organizations.create("")
    assert info.value.errors == [{"field": "name", "message": "required"}]


@pytest.mark.parametrize("status", [400, 409, 413])
async def test_other_client_errors_are_validation_errors(platform: Recorder, status: int) -> None:
    platform.add("POST", "/organizations", status, {"detail": "duplicate name"})
    with pytest.raises(ValidationError, match="duplicate name") as info:
        await organizations.create("Acme")
    assert info.value.errors == []


async def test_501_is_not_available(platform: Recorder) -> None:
    platform.add("POST", "/ai/complete", 501, {"detail": "no LLM configured"})
    with pytest.raises(NotAvailableError, match="no LLM configured") as info:
        await ai.complete("hi")
    assert isinstance(info.value, WorkflowError)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("integration", IntegrationError), ("configuration", ConfigurationError), ("user", UserError)],
)
async def test_typed_server_errors_follow_the_error_header(platform: Recorder, kind: str, error: type) -> None:
    platform.add(
        "GET", "/integrations/Halo", 502, {"detail": "token refresh failed"}, headers={"X-Bifrost-Error": kind}
    )
    with pytest.raises(error, match="token refresh failed"):
        await integrations.get("Halo")


async def test_server_error_is_a_workflow_error_with_status(platform: Recorder) -> None:
    platform.routes[("GET", "/forms")] = lambda _r: httpx.Response(500, text="Internal Server Error")
    with pytest.raises(WorkflowError, match="platform error 500: Internal Server Error"):
        await bifrost.forms.list()


async def test_unreachable_platform_is_a_workflow_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    bifrost.configure("http://down.test", "k", transport=httpx.MockTransport(refuse))
    with pytest.raises(WorkflowError, match=r"cannot reach the platform at http://down.test"):
        await workflows.list()


# --- connection and headers -----------------------------------------------------------------


async def test_bearer_token_and_org_header_are_sent(platform: Recorder) -> None:
    platform.add("GET", "/organizations", 200, [ORG])
    orgs = await organizations.list()
    assert orgs == [bifrost.Organization(**ORG)]
    request = platform.last
    assert request.headers["authorization"] == "Bearer key-123"
    assert "x-bifrost-org" not in request.headers
    assert str(request.url) == "http://platform.test/api/sdk/v1/organizations"

    recorder = Recorder()
    recorder.add("GET", "/organizations", 200, [])
    bifrost.configure("http://platform.test", "admin-key", org="acme", transport=httpx.MockTransport(recorder))
    assert await organizations.list() == []
    assert recorder.last.headers["authorization"] == "Bearer admin-key"
    assert recorder.last.headers["x-bifrost-org"] == "acme"


async def test_no_api_key_sends_no_authorization() -> None:
    recorder = Recorder()
    recorder.add("GET", "/forms", 200, [])
    bifrost.configure("http://platform.test", transport=httpx.MockTransport(recorder))
    await bifrost.forms.list()
    assert "authorization" not in recorder.last.headers


async def test_without_any_configuration_the_error_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as info:
        await config.get("x")
    message = str(info.value)
    assert "BIFROST_URL" in message and "BIFROST_API_KEY" in message
    assert "bifrost.configure" in message


async def test_environment_configuration_over_real_http(
    loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIFROST_URL", loopback.url + "/")
    monkeypatch.setenv("BIFROST_API_KEY", "env-key")
    monkeypatch.setenv("BIFROST_ORG", "org-env")
    user = await users.get("u1")
    assert user is not None and user.id == "u1"
    assert loopback.seen[-1]["path"] == "/api/sdk/v1/users/u1"
    assert loopback.seen[-1]["headers"]["authorization"] == "Bearer env-key"
    assert loopback.seen[-1]["headers"]["x-bifrost-org"] == "org-env"


async def test_execution_connection_wins_over_configure(loopback: LoopbackServer, platform: Recorder) -> None:
    with bind_context(make_context(), PlatformConnection(loopback.url, "execution-token")):
        assert await users.get("u1") is not None
    assert platform.requests == []
    assert loopback.seen[-1]["headers"]["authorization"] == "Bearer execution-token"
    # The execution token is scoped to one user and org: no org header is added.
    assert "x-bifrost-org" not in loopback.seen[-1]["headers"]


def test_one_client_per_event_loop_and_none_kept_for_dead_loops(platform: Recorder) -> None:
    platform.add("GET", "/forms", 200, [])
    clients: list[httpx.AsyncClient] = []
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def call() -> None:
        await bifrost.forms.list()
        await bifrost.forms.list()
        loop = asyncio.get_running_loop()
        loops.append(weakref.ref(loop))
        clients.extend(_client._clients[loop].values())

    asyncio.run(call())
    asyncio.run(call())
    assert len(clients) == 2 and clients[0] is not clients[1], "one client per loop, reused within a loop"
    del clients[:]
    gc.collect()
    # The cache does not keep closed loops (and their clients) alive.
    assert [ref() for ref in loops] == [None, None]
    assert len(platform.requests) == 4


# --- what the modules send ------------------------------------------------------------------


async def test_path_segments_are_percent_encoded(platform: Recorder) -> None:
    platform.add("POST", "/workflows/a%2Fb%20c/execute", 200, EXECUTION)
    platform.add("GET", "/organizations/x%2F..%2Fadmin", 200, ORG)
    platform.add("GET", "/config/api%2Furl", 200, {"value": "https://x"})
    execution = await workflows.execute("a/b c", {"n": 1})
    assert execution.result == {"ok": True}
    assert json.loads(platform.last.content) == {"params": {"n": 1}}
    assert platform.last.url.params["wait"] == "true"
    await organizations.get("x/../admin")
    assert await config.get("api/url") == "https://x"


async def test_config_round_trip_requests(platform: Recorder) -> None:
    platform.add("PUT", "/config/api_key", 200, {"key": "api_key"})
    platform.add("GET", "/config", 200, {"api_url": "https://x", "api_key": "********"})
    platform.add("DELETE", "/config/api_key", 200, {"deleted": True})
    platform.add("DELETE", "/config/gone", 404, {"detail": "not set"})
    assert await config.set("api_key", "sk_live", is_secret=True) is None
    assert json.loads(platform.last.content) == {"value": "sk_live", "is_secret": True}
    assert await config.list() == {"api_url": "https://x", "api_key": "********"}
    assert await config.delete("api_key") is True
    assert await config.delete("gone") is False


async def test_none_query_parameters_are_dropped(platform: Recorder) -> None:
    platform.add("GET", "/users", 200, [USER])
    await users.list()
    assert "org_id" not in platform.last.url.params
    await users.list(org_id="o1")
    assert platform.last.url.params["org_id"] == "o1"


async def test_executions_list_sends_iso_dates_and_status_values(platform: Recorder) -> None:
    platform.add("GET", "/executions", 200, [EXECUTION])
    result = await executions.list(
        workflow_name="wf", status=ExecutionStatus.FAILED, start_date=dt.date(2024, 1, 1),
        end_date=dt.datetime(2024, 1, 2, 12, 0), limit=10,
    )  # fmt: skip
    assert result[0].started_at == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    params = platform.last.url.params
    assert dict(params) == {
        "workflow_name": "wf", "status": "Failed", "start_date": "2024-01-01",
        "end_date": "2024-01-02T12:00:00", "limit": "10",
    }  # fmt: skip


async def test_tables_query_and_insert(platform: Recorder) -> None:
    platform.add("POST", "/tables/customers/query", 200, {"documents": [DOC], "total": 1, "limit": 10, "offset": 0})
    platform.add("POST", "/tables/customers/documents", 200, DOC)
    result = await tables.query("customers", where={"revenue": {"gte": 10000}}, order_by="created_at",
                                order_dir="desc", limit=10, scope="global", app="crm")  # fmt: skip
    assert result.documents[0].data == {"a": 1} and result.total == 1
    assert json.loads(platform.last.content) == {
        "where": {"revenue": {"gte": 10000}}, "order_by": "created_at", "order_dir": "desc", "limit": 10, "offset": 0,
    }  # fmt: skip
    assert dict(platform.last.url.params) == {"scope": "global", "app": "crm"}
    doc = await tables.insert("customers", {"name": "TechCo"}, id="techco-001")
    assert doc.id == "d1"
    assert json.loads(platform.last.content) == {"id": "techco-001", "data": {"name": "TechCo"}}


class Analysis(BaseModel):
    sentiment: str
    score: float


async def test_ai_complete_plain_and_structured(platform: Recorder) -> None:
    platform.routes[("POST", "/ai/complete")] = lambda request: httpx.Response(
        200,
        json={"content": "ok", "structured": {"sentiment": "positive", "score": "0.9"}}
        if "response_schema" in json.loads(request.content)
        else {"content": "A summary", "model": "m"},
    )
    response = await ai.complete("Summarize", knowledge=["policies"])
    assert isinstance(response, bifrost.AIResponse) and response.content == "A summary"
    assert json.loads(platform.last.content)["knowledge"] == ["policies"]
    result = await ai.complete("Analyze: Great!", response_format=Analysis)
    assert result == Analysis(sentiment="positive", score=0.9)
    assert json.loads(platform.last.content)["response_schema"]["title"] == "Analysis"


async def test_ai_stream_yields_chunks_as_lines_arrive(platform: Recorder) -> None:
    produced: list[str] = []

    async def body() -> Any:
        for part in ("Once", " upon", " a time"):
            produced.append(part)
            yield (json.dumps({"content": part}) + "\n").encode()
        yield b"\n" + json.dumps({"content": "", "done": True}).encode() + b"\n"

    platform.routes[("POST", "/ai/stream")] = lambda _r: httpx.Response(200, content=body())
    chunks = []
    async for chunk in ai.stream("Write a story"):
        # Streaming: the first chunk arrives before the server produced the rest.
        if not chunks:
            assert produced == ["Once"]
        chunks.append(chunk)
    assert "".join(c.content for c in chunks) == "Once upon a time"
    assert chunks[-1].done is True


async def test_ai_stream_errors_are_mapped_before_the_first_chunk(platform: Recorder) -> None:
    platform.add("POST", "/ai/stream", 501, {"detail": "no LLM configured"})
    with pytest.raises(NotAvailableError, match="no LLM configured"):
        async for _chunk in ai.stream("x"):
            pytest.fail("no chunk expected")


async def test_files_cloud_mode(platform: Recorder) -> None:
    platform.routes[("GET", "/files/content")] = lambda request: (
        httpx.Response(200, content=b"id,name\n")
        if request.url.params["path"] == "data/out.csv"
        else httpx.Response(404, json={"detail": "no such file"})
    )
    platform.add("PUT", "/files/content", 204)
    platform.add("GET", "/files/exists", 200, {"exists": True})
    platform.add("GET", "/files/list", 200, ["a.txt", "sub/"])
    assert await files.read("data/out.csv") == "id,name\n"
    with pytest.raises(NoSuchFileError, match="no such file"):
        await files.read("data/missing.csv")
    await files.write_bytes("img/x.png", b"\x89PNG", location="temp")
    put = platform.last
    assert put.content == b"\x89PNG"
    assert dict(put.url.params) == {"path": "img/x.png", "location": "temp"}
    assert await files.exists("a.txt") is True
    assert await files.list("data/") == ["a.txt", "sub/"]
    # The spec's uploads example: the path given by the upload field works with location="uploads".
    await files.exists("uploads/form-1/uuid/file.txt", location="uploads")
    assert dict(platform.last.url.params) == {"path": "form-1/uuid/file.txt", "location": "uploads"}


@pytest.mark.parametrize("path", ["../secrets.txt", "a/../../b", "/etc/passwd", "..", "a\\..\\..\\b"])
async def test_files_cloud_mode_refuses_escapes_before_sending(platform: Recorder, path: str) -> None:
    with pytest.raises(ValidationError, match=r"escapes|absolute"):
        await files.read(path)
    assert platform.requests == []
