"""The AI and chat data flows on each database (SQLite file, then Postgres when BIFROST_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from tests.platform.access_support import grant_role
from tests.platform.ai_support import echo_model, registered, set_ai, stream_function, tool_returns
from tests.platform.conftest import start_world


def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
    returns = tool_returns(messages)
    if returns:
        return [f"done: {returns[0].content['status']}"]
    return [
        {0: DeltaToolCall(name="reset_password", json_args=json.dumps({"email": "ivy@a.example"}), tool_call_id="c-1")}
    ]


def test_chat_and_ai_on_each_database(tmp_path: Path, database_url: str) -> None:
    world = start_world(tmp_path, database_url)
    try:
        with registered("db-chat", FunctionModel(stream_function=stream_function(plan), model_name="db-chat")), \
                registered("db-echo", echo_model("db-echo")), \
                world.server.client(world.admin_key) as admin, world.server.client(world.alice_key) as alice:  # fmt: skip
            set_ai(world, model="custom:db-chat")
            assert admin.put("/api/chat/tools/reset_password", json={"needs_approval": True}).status_code == 200
            # Approval is the workflow's: Alice holds its approver role and may approve her own runs.
            grant_role(world, world.org_a, world.alice_id, "Resetters")
            allowed = admin.put(
                "/api/workflows/reset_password/access", json={"approver_role": "Resetters", "allow_self_approval": True}
            )
            assert allowed.status_code == 200, allowed.text
            conversation = alice.post("/api/chat/conversations", json={"title": "Passwords"}).json()["id"]
            turn = alice.post(
                f"/api/chat/conversations/{conversation}/messages",
                params={"wait": "true"},
                json={"content": "reset ivy"},
            ).json()
            waiting = next(e["call"] for e in turn["events"] if e["type"] == "tool")
            assert waiting["status"] == "awaiting_approval"
            decided = alice.post(f"/api/chat/tool-calls/{waiting['id']}/approve", params={"wait": "true"}).json()
            assert "".join(e["content"] for e in decided["events"] if e["type"] == "token") == "done: Completed"
            stored = alice.get(f"/api/chat/conversations/{conversation}").json()
            assert [m["role"] for m in stored["messages"]] == ["user", "tool", "assistant"]
            assert stored["messages"][1]["tool_call"]["status"] == "completed"
            assert stored["messages"][1]["tool_call"]["result"] == {
                "email": "ivy@a.example",
                "reset": True,
                "notified": True,
            }
            # usage of both turns (the question, and the continuation after approval) against the conversation
            records = admin.get("/api/ai/usage").json()
            assert sum(1 for r in records if r["conversation_id"] == conversation and r["source"] == "chat") == 2
            # ai.complete over the API, and its usage
            set_ai(world, model="custom:db-echo")
            answer = alice.post("/api/ai/complete", json={"prompt": "ping"}).json()
            assert answer["content"] == "echo: ping"
            summary = admin.get("/api/ai/usage/summary").json()
            assert any(s["organization_id"] == world.org_a and "db-echo" in s["model"] for s in summary)
            assert alice.delete(f"/api/chat/conversations/{conversation}").status_code == 204
            assert alice.get("/api/chat/conversations").json() == []
    finally:
        world.server.stop()
