"""External MCP servers for chat agents: an admin registers a small MCP server started here on loopback
(its token stored as a config secret), gives it to an agent, and the agent's model uses its tool."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from tests.platform.ai_support import clear_ai, registered, set_ai, stream_function, tool_returns
from tests.platform.conftest import World
from tests.platform.mcp_support import ToyMcpServer, start_mcp_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp_chat"))
    try:
        yield w
    finally:
        w.server.stop()


@pytest.fixture(scope="module")
def toy() -> Iterator[ToyMcpServer]:
    server = ToyMcpServer().start()
    try:
        yield server
    finally:
        server.stop()


def _call(name: str, **arguments: Any) -> dict[int, DeltaToolCall]:
    return {0: DeltaToolCall(name=name, json_args=json.dumps(arguments), tool_call_id=f"c-{uuid.uuid4().hex[:8]}")}


@pytest.fixture
def scripted(world: World) -> Iterator[Callable[[Any], list[AgentInfo]]]:
    offered: list[AgentInfo] = []
    names: list[Any] = []

    def install(plan: Any) -> list[AgentInfo]:
        def record(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
            offered.append(info)
            return plan(messages, info)

        name = f"mcp-{uuid.uuid4().hex[:6]}"
        manager = registered(name, FunctionModel(stream_function=stream_function(record), model_name="mcp-script"))
        manager.__enter__()
        names.append(manager)
        set_ai(world, model=f"custom:{name}")
        return offered

    yield install
    for manager in names:
        manager.__exit__(None, None, None)
    clear_ai(world, world.org_a, world.org_b)


def _register(world: World, toy: ToyMcpServer, agent_id: str) -> dict[str, Any]:
    with world.server.client(world.admin_key) as admin:
        response = admin.post(
            "/api/mcp/servers",
            json={
                "name": "toy",
                "url": toy.url,
                "headers": {"Authorization": f"Bearer {ToyMcpServer.TOKEN}"},
                "agent_ids": [agent_id],
                "tools": ["forecast"],
            },
        )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_an_agent_uses_a_tool_of_a_registered_mcp_server(
    world: World, toy: ToyMcpServer, scripted: Callable[[Any], list[AgentInfo]]
) -> None:
    with world.server.client(world.admin_key) as admin:
        agent = admin.post("/api/chat/agents", json={"name": "Forecaster", "tools": ["lookup_user", "mcp_echo"]}).json()
    _register(world, toy, agent["id"])

    def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
        returns = tool_returns(messages)
        if returns:
            return ["It will be ", json.dumps(returns[0].content, sort_keys=True)]
        external = next(t.name for t in info.function_tools if "forecast" in t.name)
        return [_call(external, city="Oslo")]

    offered = scripted(plan)
    with world.server.client(world.alice_key) as alice:
        conversation = alice.post("/api/chat/conversations", json={"agent_id": agent["id"]}).json()["id"]
        turn = alice.post(
            f"/api/chat/conversations/{conversation}/messages", params={"wait": "true"}, json={"content": "Weather?"}
        ).json()
        stored = alice.get(f"/api/chat/conversations/{conversation}").json()
    names = {t.name for t in offered[0].function_tools}
    assert {"lookup_user", "mcp_echo"} <= names and any("forecast" in n for n in names)
    # The chat's schema of a data-provider parameter: the provider's current choices for Alice's organization.
    echo = next(t for t in offered[0].function_tools if t.name == "mcp_echo")
    assert echo.parameters_json_schema["properties"]["site"]["enum"] == ["org-a-hq", "org-a-lab"]
    assert "data_provider" not in json.dumps(echo.parameters_json_schema)
    assert not any("broken" in n for n in names)  # only the tools the registration offers
    forecast = next(t for t in offered[0].function_tools if "forecast" in t.name)
    assert forecast.parameters_json_schema["properties"]["city"]["type"] == "string"
    # The toy server ran it, with the token from the config secret; the model read its result.
    assert toy.calls == [{"tool": "forecast", "city": "Oslo"}]
    text = "".join(e["content"] for e in turn["events"] if e["type"] == "token")
    assert '"sky": "sunny"' in text
    # The call is recorded on the conversation.
    [message] = [m for m in stored["messages"] if m["role"] == "tool"]
    call = message["tool_call"]
    assert call["workflow"] == "mcp:toy/forecast" and call["arguments"] == {"city": "Oslo"}
    assert call["status"] == "completed" and call["result"] == {"city": "Oslo", "sky": "sunny", "high_c": 21}
    assert call["execution_id"] is None
