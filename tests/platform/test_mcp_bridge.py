"""``bifrost mcp``, the stdio bridge, end to end: the official client starts it as a subprocess (as desktop
clients do), configured only by BIFROST_URL and BIFROST_API_KEY, against a live server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.platform.conftest import World
from tests.platform.mcp_support import start_mcp_world, tool_named

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp_bridge"))
    try:
        yield w
    finally:
        w.server.stop()


def _bridge(world: World, key: str) -> StdioServerParameters:
    # The child gets only the SDK's safe default environment plus these (and the checkout on its path).
    env = {"BIFROST_URL": world.server.url, "BIFROST_API_KEY": key, "PYTHONPATH": str(ROOT)}
    return StdioServerParameters(command=sys.executable, args=["-m", "app.cli", "mcp"], env=env, cwd=str(ROOT))


async def test_the_bridge_lists_and_calls_as_the_key_user(world: World) -> None:
    async with Client(_bridge(world, world.bob_key)) as client:
        tools = (await client.list_tools()).tools
        echo = tool_named(tools, "mcp_echo")
        assert echo.input_schema["properties"]["site"]["enum"] == ["org-b-hq", "org-b-lab"]
        assert "mcp_escalate" not in {t.name for t in tools}
        result = await client.call_tool("mcp_echo", {"site": "org-b-lab", "note": "via stdio"})
        refused = await client.call_tool("mcp_refuse", {"reason": "no"})
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("mcp_escalate", {"ticket": 1})
    assert result.is_error is False
    assert result.structured_content == {
        "site": "org-b-lab",
        "note": "via stdio",
        "user": "bob@b.example",
        "org": world.org_b,
    }
    execution_id = result.meta["bifrost/execution_id"]
    with world.server.client(world.bob_key) as http:
        execution = http.get(f"/api/executions/{execution_id}").json()
    assert execution["trigger"] == "mcp" and execution["executed_by"] == world.bob_id
    assert refused.is_error is True and refused.content[0].text == "refused: no"


def test_the_bridge_says_what_is_wrong_on_stderr(world: World) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BIFROST_URL": world.server.url, "BIFROST_API_KEY": "bfk_wrong"}
    bad_key = subprocess.run(
        [sys.executable, "-m", "app.cli", "mcp"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert bad_key.returncode == 2 and bad_key.stdout == ""
    assert "Invalid or revoked API key" in bad_key.stderr
    env.pop("BIFROST_API_KEY")
    no_key = subprocess.run(
        [sys.executable, "-m", "app.cli", "mcp"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert no_key.returncode == 2 and "BIFROST_API_KEY" in no_key.stderr
