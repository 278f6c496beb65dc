"""Attacks on /mcp: no key, a wrong kind of token, another organization's key, limited keys, a stolen
session id, an oversized body, a cross-site request. Real HTTP against a live server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.platform.conftest import World
from tests.platform.mcp_support import create_key, mcp_client, start_mcp_world, tool_named

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp_attack"))
    try:
        yield w
    finally:
        w.server.stop()


def _post(world: World, body: object, token: str | None = None, **headers: str) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=world.server.url, timeout=30) as http:
        return http.post("/mcp", json=body, headers={**MCP_HEADERS, **headers})


def test_no_key_or_a_wrong_token_is_refused_before_the_protocol(world: World) -> None:
    for token in (None, "bfk_not-a-real-key", "bfx_an-execution-token", "garbage"):
        response = _post(world, INITIALIZE, token)
        assert response.status_code == 401, (token, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["message"]  # a JSON-RPC error MCP clients show
        assert "mcp-session-id" not in response.headers
    # A GET of the server stream needs a key too.
    with httpx.Client(base_url=world.server.url, timeout=30) as http:
        assert http.get("/mcp", headers={"Accept": "text/event-stream"}).status_code == 401


def test_a_key_cannot_act_in_another_organization(world: World) -> None:
    response = _post(world, INITIALIZE, world.alice_key, **{"X-Bifrost-Org": world.org_b})
    assert response.status_code == 403 and "organization" in response.json()["error"]["message"]


async def test_an_organization_limited_admin_key_sees_that_organization_only(world: World) -> None:
    key = create_key(world, "admin@test.io", "admin-password", organization_id=world.org_b)["key"]
    async with mcp_client(world.server.url, key) as client:
        tools = (await client.list_tools()).tools
        echo = await client.call_tool("mcp_echo", {"site": "org-b-hq"})
    assert tool_named(tools, "mcp_echo").input_schema["properties"]["site"]["enum"] == ["org-b-hq", "org-b-lab"]
    # Platform powers are gone with the organization limit: the Escalation-only tool is not offered.
    assert "mcp_escalate" not in {t.name for t in tools}
    assert echo.structured_content["org"] == world.org_b


async def test_a_workflow_limited_key_offers_and_runs_that_workflow_only(world: World) -> None:
    key = create_key(world, "alice@a.example", "alice-password", workflow_id="mcp_echo")["key"]
    async with mcp_client(world.server.url, key) as client:
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["mcp_echo"]
        # Its data provider still fills the enum: it is part of the one workflow the key may run.
        assert tools[0].input_schema["properties"]["site"]["enum"] == ["org-a-hq", "org-a-lab"]
        assert (await client.call_tool("mcp_echo", {"site": "org-a-lab"})).is_error is False
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("lookup_user", {"email": "a@a.example"})


def test_a_session_id_is_useless_with_another_key(world: World) -> None:
    opened = _post(world, INITIALIZE, world.alice_key)
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    headers = {"Mcp-Session-Id": session_id, "Mcp-Protocol-Version": "2025-06-18"}
    stolen = _post(world, LIST_TOOLS, world.bob_key, **headers)
    assert stolen.status_code == 404
    assert "mcp_escalate" not in stolen.text and "org-a" not in stolen.text


def test_an_oversized_body_is_refused_before_it_is_read(world: World) -> None:
    limit = world.server.settings.max_body_bytes
    with httpx.Client(base_url=world.server.url, timeout=60) as http:
        response = http.post(
            "/mcp",
            content=b"{" + b" " * limit + b"}",
            headers={**MCP_HEADERS, "Authorization": f"Bearer {world.alice_key}"},
        )
    assert response.status_code == 413 and "BIFROST_MAX_BODY_BYTES" in response.json()["detail"]


def test_a_cross_site_request_without_a_key_is_refused(world: World) -> None:
    response = _post(world, INITIALIZE, None, Origin="https://evil.example")
    assert response.status_code in (401, 403)
    assert "mcp-session-id" not in response.headers
