"""The real HTTP provider path: ``openai:`` models with a base URL talk to a fake OpenAI-compatible server.

Covers what the scripted-model tests cannot: the API key read from a config secret and sent as a
bearer token, chat completions with tool calls (structured output, chat tools), SSE streaming, and
provider errors mapped to typed SDK errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import bifrost
from bifrost import ai
from bifrost.errors import ConfigurationError, WorkflowError
from tests.fakes.openai_server import FakeOpenAI, Reply, last_message, reply_text, reply_tool_call, tool_names
from tests.platform.ai_support import clear_ai, set_ai
from tests.platform.conftest import World

KEY = "sk-fake-provider"


class Ticket(BaseModel):
    priority: str
    summary: str


def script(body: dict[str, Any]) -> Reply:
    last = last_message(body)
    text = str(last.get("content") or "")
    if "final_result" in tool_names(body):
        return reply_tool_call("final_result", {"priority": "high", "summary": "VPN down for sales"})
    if last.get("role") == "tool":
        return reply_text(f"tool said {json.loads(last['content'])['status']}")
    if text.startswith("explode"):
        return Reply(status=500, error={"error": {"message": "upstream exploded", "type": "server_error"}})
    if text.startswith("look up"):
        return reply_tool_call("lookup_user", {"email": "gil@a.example"})
    return reply_text("streamed answer in five pieces", chunks=["streamed ", "answer ", "in ", "five ", "pieces"])


@pytest.fixture
def fake(world: World) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(script, api_key=KEY) as server, world.server.client(world.admin_key) as admin:
        assert admin.put("/api/config/fake_provider_key", json={"value": KEY, "is_secret": True}).status_code == 200
        set_ai(world, model="openai:gpt-4o-mini", base_url=server.base_url, api_key_config="fake_provider_key")
        bifrost.configure(world.server.url, world.alice_key)
        yield server
        bifrost.configure(None)
        clear_ai(world)
        admin.delete("/api/config/fake_provider_key")


async def test_completion_over_http_with_the_secret_key(world: World, fake: FakeOpenAI) -> None:
    response = await ai.complete("hello", system="Be terse.", max_tokens=20, temperature=0)
    assert response.content == "streamed answer in five pieces"
    assert response.model == "openai:gpt-4o-mini"
    assert response.input_tokens and response.output_tokens == 5
    sent = fake.requests[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["max_completion_tokens"] == 20 and sent["temperature"] == 0
    assert {"role": "system", "content": "Be terse."} in sent["messages"]


async def test_structured_output_through_the_provider(world: World, fake: FakeOpenAI) -> None:
    ticket = await ai.complete("Sales cannot reach the VPN", response_format=Ticket)
    assert ticket == Ticket(priority="high", summary="VPN down for sales")
    schema = next(t for t in fake.requests[-1]["tools"] if t["function"]["name"] == "final_result")
    assert set(schema["function"]["parameters"]["properties"]) == {"priority", "summary"}


async def test_stream_arrives_chunk_by_chunk(world: World, fake: FakeOpenAI) -> None:
    chunks = [c async for c in ai.stream("tell me")]
    assert [c.content for c in chunks if not c.done] == ["streamed ", "answer ", "in ", "five ", "pieces"]
    assert chunks[-1].done and fake.requests[-1]["stream"] is True


async def test_provider_errors_are_typed(world: World, fake: FakeOpenAI) -> None:
    with pytest.raises(WorkflowError, match="upstream exploded"):
        await ai.complete("explode now")
    with pytest.raises(WorkflowError, match="upstream exploded"):
        async for _chunk in ai.stream("explode later"):
            pass
    with world.server.client(world.admin_key) as admin:
        admin.put("/api/config/fake_provider_key", json={"value": "sk-wrong", "is_secret": True})
    with pytest.raises(ConfigurationError, match="refused the credentials"):
        await ai.complete("hello")
    with world.server.client(world.admin_key) as admin:
        admin.delete("/api/config/fake_provider_key")
    with pytest.raises(ConfigurationError, match="config key 'fake_provider_key'"):
        await ai.complete("hello")


def test_chat_tool_round_trip_through_the_provider(world: World, fake: FakeOpenAI) -> None:
    with world.server.client(world.alice_key) as alice:
        conversation = alice.post("/api/chat/conversations", json={}).json()["id"]
        turn = alice.post(
            f"/api/chat/conversations/{conversation}/messages", params={"wait": "true"}, json={"content": "look up gil"}
        ).json()
    calls = [e["call"] for e in turn["events"] if e["type"] == "tool_update"]
    assert calls[-1]["workflow"] == "lookup_user" and calls[-1]["status"] == "completed"
    assert "".join(e["content"] for e in turn["events"] if e["type"] == "token") == "tool said Completed"
    tool_schema = next(t for t in fake.requests[0]["tools"] if t["function"]["name"] == "lookup_user")["function"]
    assert tool_schema["description"].startswith("Find a user account by email address.")
    assert tool_schema["parameters"]["properties"]["email"]["type"] == "string"
    # the tool result went back to the provider as a tool message
    assert fake.requests[1]["messages"][-1]["role"] == "tool"
