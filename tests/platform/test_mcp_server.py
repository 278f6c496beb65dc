"""The MCP server at /mcp, driven by the official ``mcp`` client over real HTTP against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.platform.conftest import World
from tests.platform.mcp_support import create_key, grant_role, mcp_client, start_mcp_world, tool_named

EXECUTION_META = "bifrost/execution_id"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp"))
    grant_role(w, w.org_a, w.alice_id, "Escalation")
    try:
        yield w
    finally:
        w.server.stop()


def _executions(world: World, key: str, workflow: str) -> list[dict]:
    with world.server.client(key) as http:
        response = http.get("/api/executions", params={"workflow_name": workflow, "limit": 100})
        assert response.status_code == 200, response.text
        return response.json()


async def test_tool_lists_follow_user_role_and_organization(world: World) -> None:
    async with mcp_client(world.server.url, world.alice_key) as client:
        alice = (await client.list_tools()).tools
    async with mcp_client(world.server.url, world.bob_key, mode="legacy") as client:
        bob = (await client.list_tools()).tools
    alice_names, bob_names = {t.name for t in alice}, {t.name for t in bob}
    # The Escalation role holder (Org A) gets the role-limited tool; Bob (Org B, no role) does not.
    assert "mcp_escalate" in alice_names and "mcp_escalate" not in bob_names
    assert {"mcp_echo", "mcp_refuse", "mcp_wipe", "lookup_user"} <= alice_names & bob_names
    assert "not_a_tool" not in alice_names | bob_names  # a workflow without is_tool is no tool
    # The same schema as the chat: parameter descriptions, required, no additional properties.
    echo = tool_named(alice, "mcp_echo")
    schema = echo.input_schema
    assert schema["required"] == ["site"] and schema["additionalProperties"] is False
    assert schema["properties"]["note"]["description"] == "Free text."
    assert "Echo who runs it" in echo.description
    # The data provider's current choices for each caller's organization, as a standard enum.
    assert "data_provider" not in json.dumps(schema)
    assert schema["properties"]["site"]["enum"] == ["org-a-hq", "org-a-lab"]
    assert "org-a-hq (org-a head office)" in schema["properties"]["site"]["description"]
    assert tool_named(bob, "mcp_echo").input_schema["properties"]["site"]["enum"] == ["org-b-hq", "org-b-lab"]


async def test_a_call_is_an_execution_of_the_caller(world: World) -> None:
    async with mcp_client(world.server.url, world.alice_key) as client:
        result = await client.call_tool("mcp_echo", {"site": "org-a-hq", "note": "hello"})
    assert result.is_error is False
    assert result.structured_content == {
        "site": "org-a-hq",
        "note": "hello",
        "user": "alice@a.example",
        "org": world.org_a,
    }
    assert json.loads(result.content[0].text) == result.structured_content
    execution_id = result.meta[EXECUTION_META]
    with world.server.client(world.alice_key) as http:
        execution = http.get(f"/api/executions/{execution_id}").json()
        logs = http.get(f"/api/executions/{execution_id}/logs").json()
    assert execution["trigger"] == "mcp" and execution["status"] == "Completed"
    assert execution["executed_by"] == world.alice_id and execution["org_id"] == world.org_a
    assert any("echo for alice@a.example at org-a-hq" in line["message"] for line in logs)
    # Bob (another organization) cannot see it.
    with world.server.client(world.bob_key) as http:
        assert http.get(f"/api/executions/{execution_id}").status_code == 404


async def test_user_error_is_a_tool_error_with_its_message(world: World) -> None:
    async with mcp_client(world.server.url, world.bob_key, mode="legacy") as client:
        result = await client.call_tool("mcp_refuse", {"reason": "out of stock"})
    assert result.is_error is True
    assert result.content[0].text == "refused: out of stock"
    with world.server.client(world.bob_key) as http:
        execution = http.get(f"/api/executions/{result.meta[EXECUTION_META]}").json()
    assert execution["status"] == "Failed" and execution["trigger"] == "mcp" and execution["user_error"] is True


async def test_bad_arguments_are_a_clear_error_and_run_nothing(world: World) -> None:
    before = len(_executions(world, world.alice_key, "mcp_escalate"))
    async with mcp_client(world.server.url, world.alice_key) as client:
        wrong_type = await client.call_tool("mcp_escalate", {"ticket": "not a number"})
        missing = await client.call_tool("mcp_escalate", {})
        unknown = await client.call_tool("mcp_escalate", {"ticket": 1, "extra": True})
    for result in (wrong_type, missing, unknown):
        assert result.is_error is True and result.content[0].text.startswith("Invalid arguments:")
        assert result.meta is None or EXECUTION_META not in result.meta
    assert "ticket" in wrong_type.content[0].text and "ticket" in missing.content[0].text
    assert "extra" in unknown.content[0].text
    assert len(_executions(world, world.alice_key, "mcp_escalate")) == before


async def test_a_tool_the_caller_may_not_run_is_unknown(world: World) -> None:
    async with mcp_client(world.server.url, world.bob_key) as client:
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("mcp_escalate", {"ticket": 7})
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("not_a_tool", {"email": "x@b.example"})
    assert _executions(world, world.admin_key, "mcp_escalate") == [] or all(
        e["executed_by"] != world.bob_id for e in _executions(world, world.admin_key, "mcp_escalate")
    )


async def test_a_workflow_that_needs_approval_waits_and_says_where(world: World) -> None:
    async with mcp_client(world.server.url, world.alice_key) as client:
        result = await client.call_tool("mcp_wipe", {"device": "laptop-7"})
    assert result.is_error is False
    execution_id = result.meta[EXECUTION_META]
    text = result.content[0].text
    assert "waits for an approver" in text
    assert f"{world.server.url}/approvals/{execution_id}" in text and f"/executions/{execution_id}" in text
    assert result.structured_content["status"] == "AwaitingApproval"
    # The approval flow decides it: an admin approves and the run completes.
    with world.server.client(world.admin_key) as http:
        assert http.get(f"/api/executions/{execution_id}").json()["status"] == "AwaitingApproval"
        assert http.post(f"/api/approvals/{execution_id}/approve", json={}).status_code == 200
        for _ in range(100):
            execution = http.get(f"/api/executions/{execution_id}").json()
            if execution["status"] not in ("Pending", "Running"):
                break
            time.sleep(0.1)
    assert execution["status"] == "Completed" and execution["result"] == "wiped laptop-7"
    assert execution["trigger"] == "mcp"


async def test_a_revoked_key_is_refused_at_once_even_mid_session(world: World) -> None:
    created = create_key(world, "alice@a.example", "alice-password")
    async with mcp_client(world.server.url, created["key"], mode="legacy") as client:
        assert "mcp_echo" in {t.name for t in (await client.list_tools()).tools}
        with world.server.client(world.alice_key) as http:
            assert http.delete(f"/api/api-keys/{created['id']}").status_code == 200
        with pytest.raises(Exception):  # noqa: B017 - the transport's error for a 401 answer
            await client.list_tools()
    with pytest.raises(Exception):  # noqa: B017
        async with mcp_client(world.server.url, created["key"]) as client:
            await client.list_tools()


async def _wait_for(event: anyio.Event, seconds: float = 20) -> None:
    with anyio.fail_after(seconds):
        await event.wait()


async def test_tool_list_changes_are_announced_to_connected_clients(world: World) -> None:
    legacy_told = anyio.Event()

    async def on_message(message: object) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ToolListChangedNotification):
            legacy_told.set()

    async with (
        mcp_client(world.server.url, world.bob_key, mode="legacy", message_handler=on_message) as legacy,
        mcp_client(world.server.url, world.alice_key) as modern,
    ):
        assert legacy.server_capabilities.tools.list_changed is True
        assert "mcp_later" not in {t.name for t in (await legacy.list_tools()).tools}
        async with modern.listen(tools_list_changed=True) as subscription:
            await anyio.sleep(world_poll_seconds() + 0.5)  # the watcher has read the catalogue once
            workspace = Path(world.server.settings.workspace)
            (workspace / "mcp_later.py").write_text(LATER_FLOW)
            world.server.call(lambda: world.server.platform.sync_workspace(reload=True))
            with anyio.fail_after(20):
                async for event in subscription:
                    assert type(event).__name__ == "ToolsListChanged"
                    break
        await _wait_for(legacy_told)
        assert "mcp_later" in {t.name for t in (await legacy.list_tools()).tools}
        assert "mcp_later" in {t.name for t in (await modern.list_tools(cache_mode="refresh")).tools}


LATER_FLOW = '''
from bifrost import workflow


@workflow(is_tool=True)
async def mcp_later() -> str:
    """Added while clients are connected."""
    return "later"
'''


def world_poll_seconds() -> float:
    from app.services.mcp.server import POLL_SECONDS

    return POLL_SECONDS


SERVE_AND_KNOCK = """
import asyncio, sys, tempfile
from pathlib import Path

import httpx

from app.web.server import running_server
from tests.conftest import make_settings


async def main():
    settings = make_settings(Path(tempfile.mkdtemp()), workers=1)
    async with running_server(settings) as (_platform, url):
        async with httpx.AsyncClient(base_url=url) as http:
            anonymous = await http.post("/mcp", json={})
            wrong_key = await http.post("/mcp", json={}, headers={"Authorization": "Bearer bfk_wrong"})
        print(anonymous.status_code, wrong_key.status_code, sorted(m for m in ("mcp", "mcp_types") if m in sys.modules))


asyncio.run(main())
"""


def test_the_sdk_loads_with_the_first_authenticated_mcp_request_not_with_the_server() -> None:
    # The SDK is ~0.7 s of imports: every `bifrost serve` and `bifrost run` would pay it at start-up, and
    # a caller without a valid key must not make a server load it. The tests above start it with a key.
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SERVE_AND_KNOCK], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "401 401 []", out.stdout
