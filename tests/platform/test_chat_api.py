"""The chat over real HTTP with scripted pydantic-ai models: tools, approvals, errors, streaming, commands, scoping.

Every tool call here is a real execution in a worker (``trigger="chat"``); the model is a
``FunctionModel`` registered as ``custom:<name>`` in this process, where the live server runs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from tests.platform.ai_support import clear_ai, last_user_text, registered, set_ai, stream_function, tool_returns
from tests.platform.conftest import World

Plan = Callable[[list[ModelMessage], AgentInfo], list[Any]]


def call(name: str, **arguments: Any) -> dict[int, DeltaToolCall]:
    """A streamed tool call of the scripted model."""
    return {0: DeltaToolCall(name=name, json_args=json.dumps(arguments), tool_call_id=f"call-{uuid.uuid4().hex[:8]}")}


class Script:
    """A FunctionModel whose answers come from ``plan``; records what each request offered and sent."""

    def __init__(self, plan: Plan) -> None:
        self.requests: list[tuple[list[ModelMessage], AgentInfo]] = []

        def record(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
            self.requests.append((messages, info))
            return plan(messages, info)

        self.model = FunctionModel(stream_function=stream_function(record), model_name="chat-script")

    def tools_offered(self, index: int = -1) -> list[str]:
        return [t.name for t in self.requests[index][1].function_tools]


@pytest.fixture
def chat(world: World) -> Iterator[Callable[[Plan], Script]]:
    """Install a scripted model as the platform's model for one test."""
    names: list[str] = []

    def install(plan: Plan) -> Script:
        script = Script(plan)
        name = f"chat-{uuid.uuid4().hex[:6]}"
        registered_cm = registered(name, script.model)
        registered_cm.__enter__()
        names.append(name)
        cms.append(registered_cm)
        set_ai(world, model=f"custom:{name}")
        return script

    cms: list[Any] = []
    clear_ai(world, world.org_a, world.org_b)
    yield install
    for cm in cms:
        cm.__exit__(None, None, None)
    clear_ai(world, world.org_a, world.org_b)
    with world.server.client(world.admin_key) as admin:
        for tool in ("reset_password", "lookup_user"):
            admin.put(f"/api/chat/tools/{tool}", json={"needs_approval": False})


def new_conversation(client: httpx.Client, **body: Any) -> str:
    response = client.post("/api/chat/conversations", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


def send(client: httpx.Client, conversation: str, content: str) -> dict[str, Any]:
    response = client.post(
        f"/api/chat/conversations/{conversation}/messages", params={"wait": "true"}, json={"content": content}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def text_of(turn: dict[str, Any]) -> str:
    return "".join(e["content"] for e in turn["events"] if e["type"] == "token")


def calls_of(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """The final state of each tool call announced in a turn."""
    latest: dict[str, dict[str, Any]] = {}
    for event in turn["events"]:
        if event["type"] in ("tool", "tool_update"):
            latest[event["call"]["id"]] = event["call"]
    return list(latest.values())


def lookup_then_answer(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
    returns = tool_returns(messages)
    if returns:
        return ["Found ", "it: ", json.dumps(returns[0].content, sort_keys=True)]
    return [call("lookup_user", email="dana@a.example")]


def test_the_model_picks_the_tool_and_the_result_comes_back(world: World, chat: Callable[[Plan], Script]) -> None:
    script = chat(lookup_then_answer)
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        turn = send(alice, conversation, "Who is dana@a.example?")
        [tool_call] = calls_of(turn)
        assert tool_call["workflow"] == "lookup_user" and tool_call["arguments"] == {"email": "dana@a.example"}
        assert tool_call["status"] == "completed"
        assert tool_call["result"] == {"email": "dana@a.example", "name": "Dana", "active": True}
        # the call is a recorded execution, run by a worker, triggered by the chat, as Alice in Org A
        execution = alice.get(f"/api/executions/{tool_call['execution_id']}").json()
        assert execution["trigger"] == "chat" and execution["status"] == "Completed"
        assert execution["org_id"] == world.org_a and execution["executed_by"] == world.alice_id
        # the model read the result and answered with it
        assert text_of(turn) == (
            'Found it: {"result": {"active": true, "email": "dana@a.example", "name": "Dana"}, "status": "Completed"}'
        )
        offered = script.tools_offered(0)
        assert {"lookup_user", "reset_password", "failing_tool"} <= set(offered)
        assert "not_a_tool" not in offered and "ask_ai" not in offered
        # the conversation is stored: user message, tool call, answer
        stored = alice.get(f"/api/chat/conversations/{conversation}").json()
        assert [m["role"] for m in stored["messages"]] == ["user", "tool", "assistant"]
        assert stored["messages"][1]["tool_call"]["execution_id"] == tool_call["execution_id"]
        assert stored["title"] == "Who is dana@a.example?"


def test_streaming_arrives_in_order_and_history_is_sent_back(world: World, chat: Callable[[Plan], Script]) -> None:
    script = chat(lambda messages, info: ["Hel", "lo ", "the", "re", f" ({last_user_text(messages)})"])
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        first = send(alice, conversation, "one")
        tokens = [e["content"] for e in first["events"] if e["type"] == "token"]
        assert tokens == ["Hel", "lo ", "the", "re", " (one)"]
        assert [e["type"] for e in first["events"]][-1] == "done"
        assert [e["seq"] for e in first["events"]] == list(range(len(first["events"])))
        send(alice, conversation, "two")
    history_text = json.dumps([str(m) for m in script.requests[-1][0]])
    assert "one" in history_text and "Hello there (one)" in history_text and "two" in history_text


def test_a_failing_tool_error_reaches_the_model(world: World, chat: Callable[[Plan], Script]) -> None:
    def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
        returns = tool_returns(messages)
        if returns:
            return [f"The tool said: {returns[0].content['error']}"]
        return [call("failing_tool", reason="the disk is full")]

    chat(plan)
    with world.server.client(world.alice_key) as alice:
        turn = send(alice, new_conversation(alice), "do the thing")
    [tool_call] = calls_of(turn)
    assert tool_call["status"] == "failed" and tool_call["error"] == "cannot do it: the disk is full"
    assert text_of(turn) == "The tool said: cannot do it: the disk is full"


def test_a_turn_that_fails_during_a_call_ends_the_call(
    world: World, chat: Callable[[Plan], Script], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services.chat.tool_runs import ToolRunner

    async def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("the database went away")

    chat(lookup_then_answer)
    monkeypatch.setattr(ToolRunner, "_execute", broken)  # a platform fault while the call runs
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        turn = send(alice, conversation, "Who is dana@a.example?")
        [tool_call] = calls_of(turn)
        assert tool_call["status"] == "failed" and "failed unexpectedly" in tool_call["error"]
        stored = alice.get(f"/api/chat/conversations/{conversation}").json()
        assert [m["role"] for m in stored["messages"]] == ["user", "tool", "notice"]
        assert stored["messages"][1]["tool_call"]["status"] == "failed"
        # the conversation goes on: the next message is answered
        monkeypatch.undo()
        chat(lambda messages, info: ["Still here."])
        assert text_of(send(alice, conversation, "hello?")) == "Still here."


def test_invalid_arguments_and_timeouts_reach_the_model(world: World, chat: Callable[[Plan], Script]) -> None:
    seen: list[Any] = []

    def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
        returns = tool_returns(messages)
        if returns:
            seen.append(returns[0].content)
            return ["noted"]
        prompt = last_user_text(messages)
        if prompt == "bad args":
            return [call("reset_password", email="x@a.example", notify="loudly")]
        return [call("slow_tool", seconds=30)]

    chat(plan)
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        send(alice, conversation, "bad args")
        assert seen[-1]["status"] == "Failed" and "notify" in seen[-1]["error"]
        turn = send(alice, conversation, "slow")
    [tool_call] = calls_of(turn)
    assert tool_call["status"] == "failed" and "time" in tool_call["error"].lower()
    assert seen[-1]["status"] == "Failed" and "time" in seen[-1]["error"].lower()


def _conversation_when(
    client: httpx.Client, conversation: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the conversation until ``done`` holds (a chat resumed by an approver runs in the background)."""
    deadline = time.monotonic() + 30
    while True:
        body = client.get(f"/api/chat/conversations/{conversation}").json()
        if done(body) or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)


def _calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["tool_call"] for m in body["messages"] if m.get("tool_call")]


def test_approval_gates_the_call(world: World, chat: Callable[[Plan], Script]) -> None:
    """A tool of a workflow that needs approval: its run waits for an approver, then the chat goes on."""

    def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
        returns = tool_returns(messages)
        if returns:
            return [f"Result: {json.dumps(returns[0].content, sort_keys=True)}"]
        return ["I will reset it. ", call("reset_password", email="erin@a.example")]

    chat(plan)
    with world.server.client(world.admin_key) as admin:
        assert admin.put("/api/chat/tools/reset_password", json={"needs_approval": True}).status_code == 200
        # the chat setting is the workflow's own now
        assert admin.get("/api/workflows/reset_password/access").json()["needs_approval"] is True
    with world.server.client(world.alice_key) as alice, world.server.client(world.admin_key) as admin:
        before = len(alice.get("/api/executions", params={"workflow_name": "reset_password"}).json())
        conversation = new_conversation(alice)
        turn = send(alice, conversation, "reset erin's password")
        [waiting] = calls_of(turn)
        assert waiting["status"] == "awaiting_approval" and waiting["needs_approval"]
        assert waiting["arguments"] == {"email": "erin@a.example"} and waiting["execution_id"]
        assert text_of(turn) == "I will reset it. "
        # the run is recorded, waiting, and nothing of it ran
        run = alice.get(f"/api/executions/{waiting['execution_id']}").json()
        assert run["status"] == "AwaitingApproval" and run["started_at"] is None
        assert len(alice.get("/api/executions", params={"workflow_name": "reset_password"}).json()) == before + 1
        blocked = alice.post(f"/api/chat/conversations/{conversation}/messages", json={"content": "hello?"})
        assert blocked.status_code == 409 and "approv" in blocked.json()["detail"]
        # Bob cannot see or decide Alice's call; Alice may not approve her own run
        with world.server.client(world.bob_key) as bob:
            assert bob.post(f"/api/chat/tool-calls/{waiting['id']}/approve").status_code == 404
        own = alice.post(f"/api/chat/tool-calls/{waiting['id']}/approve")
        assert own.status_code == 403 and "another approver" in own.json()["detail"]
        # an approver (platform admin) approves on the approvals API: the run runs, the chat goes on
        decided = admin.post(f"/api/approvals/{waiting['execution_id']}/approve", json={"reason": "ok"})
        assert decided.status_code == 200, decided.text
        body = _conversation_when(alice, conversation, lambda b: "Result:" in str(b["messages"]))
        [ran] = _calls(body)
        assert ran["id"] == waiting["id"] and ran["status"] == "completed"
        assert ran["execution_id"] == waiting["execution_id"]
        assert any(
            m["content"]
            == 'Result: {"result": {"email": "erin@a.example", "notified": true, "reset": true}, "status": "Completed"}'
            for m in body["messages"]
        )
        assert alice.post(f"/api/chat/tool-calls/{waiting['id']}/approve").status_code == 409  # decided already

        # a rejected call never runs, and the model is told the reason
        turn = send(alice, conversation, "reset it again")
        [waiting] = calls_of(turn)
        rejected = admin.post(f"/api/approvals/{waiting['execution_id']}/reject", json={"reason": "not today"})
        assert rejected.status_code == 200, rejected.text
        body = _conversation_when(
            alice, conversation, lambda b: _calls(b)[-1]["status"] == "rejected" and not b["active_turn"]
        )
        assert "not today" in _calls(body)[-1]["error"]
        run = alice.get(f"/api/executions/{waiting['execution_id']}").json()
        assert run["status"] == "Cancelled" and "not today" in run["error_message"] and run["started_at"] is None


def test_tools_follow_what_the_user_may_run(world: World, chat: Callable[[Plan], Script]) -> None:
    script = chat(lambda messages, info: ["ok"])

    async def move_to_org_b() -> None:
        from sqlalchemy import update

        from app.db import transaction
        from app.models import Workflow
        from app.services.workflows.catalogue import WorkflowService

        async with transaction(world.server.platform.sessions) as session:
            await session.execute(
                update(Workflow).where(Workflow.name == "failing_tool").values(organization_id=world.org_b)
            )
        WorkflowService.forget_cached()

    async def back_to_global() -> None:
        from sqlalchemy import update

        from app.db import transaction
        from app.models import Workflow
        from app.services.workflows.catalogue import WorkflowService

        async with transaction(world.server.platform.sessions) as session:
            await session.execute(update(Workflow).where(Workflow.name == "failing_tool").values(organization_id=None))
        WorkflowService.forget_cached()

    world.server.call(move_to_org_b)
    try:
        with world.server.client(world.alice_key) as alice, world.server.client(world.bob_key) as bob:
            send(alice, new_conversation(alice), "hi")
            assert "failing_tool" not in script.tools_offered() and "lookup_user" in script.tools_offered()
            assert "failing_tool" not in [t["name"] for t in alice.get("/api/chat/tools").json()]
            send(bob, new_conversation(bob), "hi")
            assert "failing_tool" in script.tools_offered()
            # /run cannot reach it either
            turn = send(alice, new_conversation(alice), "/run failing_tool reason=x")
            assert "No tool named 'failing_tool'" in text_of(turn) and not calls_of(turn)
    finally:
        world.server.call(back_to_global)

    # an API key limited to one workflow offers only that one
    async def limited_key() -> str:
        from app.db import transaction
        from app.services.identity.auth import ApiKeyService, AuthService

        async with transaction(world.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(world.alice_id)
            _, key = await ApiKeyService(session).create(actor, "lookup only", workflow_id="lookup_user")
        return key

    key = world.server.call(limited_key)
    with world.server.client(key) as limited:
        send(limited, new_conversation(limited), "hi")
    assert script.tools_offered() == ["lookup_user"]


def test_an_agent_narrows_tools_and_sets_instructions(world: World, chat: Callable[[Plan], Script]) -> None:
    script = chat(lambda messages, info: ["ok"])
    with world.server.client(world.admin_key) as admin:
        created = admin.post(
            "/api/chat/agents",
            json={
                "name": f"Helpdesk {uuid.uuid4().hex[:4]}",
                "instructions": "You are the helpdesk bot.",
                "tools": ["lookup_user"],
                "organization_id": world.org_a,
            },
        )
        assert created.status_code == 201, created.text
        agent = created.json()
        assert (
            admin.post("/api/chat/agents", json={"name": agent["name"], "organization_id": world.org_a}).status_code
            == 409
        )
        assert (
            admin.post("/api/chat/agents", json={"name": "x", "tools": "all"}).json()["extra"]["errors"][0]["field"]
            == "tools"
        )
    with world.server.client(world.alice_key) as alice, world.server.client(world.bob_key) as bob:
        assert agent["id"] in [a["id"] for a in alice.get("/api/chat/agents").json()]
        assert agent["id"] not in [a["id"] for a in bob.get("/api/chat/agents").json()]
        assert bob.post("/api/chat/conversations", json={"agent_id": agent["id"]}).status_code == 404
        assert alice.post("/api/chat/agents", json={"name": "mine"}).status_code == 403
        send(alice, new_conversation(alice, agent_id=agent["id"]), "hi")
    assert script.tools_offered() == ["lookup_user"]
    assert script.requests[-1][1].instructions == "You are the helpdesk bot."
    with world.server.client(world.admin_key) as admin:
        assert admin.delete(f"/api/chat/agents/{agent['id']}").status_code == 204


def test_commands_work_without_any_model(world: World) -> None:
    clear_ai(world, world.org_a, world.org_b)
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        turn = send(alice, conversation, "hello there")
        notice = [e for e in turn["events"] if e["type"] == "notice"]
        # A technician gets the short notice (issue 19); the admin's how-to is for those who can act on it.
        assert notice and "ask your administrator" in notice[0]["content"] and "/tools" in notice[0]["content"]
        assert "/admin/ai" not in notice[0]["content"]
        tools = text_of(send(alice, conversation, "/tools"))
        assert "lookup_user(email)" in tools and "reset_password(email, notify?)" in tools and "not_a_tool" not in tools
        turn = send(alice, conversation, '/run lookup_user email="fred@a.example"')
        [tool_call] = calls_of(turn)
        assert tool_call["status"] == "completed" and tool_call["result"]["name"] == "Fred"
        assert text_of(turn) == "lookup_user completed."
        failed = send(alice, conversation, "/run reset_password email=x@a.example notify=maybe")
        assert "reset_password failed: Invalid arguments: notify" in text_of(failed)
        assert "unknown command" in text_of(send(alice, conversation, "/frobnicate"))
        roles = [m["role"] for m in alice.get(f"/api/chat/conversations/{conversation}").json()["messages"]]
        assert roles[:2] == ["user", "notice"] and "tool" in roles


def test_conversations_are_private_and_managed(world: World) -> None:
    with world.server.client(world.alice_key) as alice, world.server.client(world.bob_key) as bob:
        conversation = new_conversation(alice, title="Printer trouble")
        assert conversation in [c["id"] for c in alice.get("/api/chat/conversations").json()]
        assert conversation not in [c["id"] for c in bob.get("/api/chat/conversations").json()]
        for method, path, body in [
            ("GET", f"/api/chat/conversations/{conversation}", None),
            ("PATCH", f"/api/chat/conversations/{conversation}", {"title": "mine now"}),
            ("DELETE", f"/api/chat/conversations/{conversation}", None),
            ("POST", f"/api/chat/conversations/{conversation}/messages", {"content": "hi"}),
        ]:
            assert bob.request(method, path, json=body).status_code == 404, (method, path)
        renamed = alice.patch(f"/api/chat/conversations/{conversation}", json={"title": "Printer on floor 2"})
        assert renamed.json()["title"] == "Printer on floor 2"
        assert alice.patch(f"/api/chat/conversations/{conversation}", json={"title": ""}).status_code == 422
        assert alice.post(f"/api/chat/conversations/{conversation}/messages", json={"content": ""}).status_code == 422
        assert (
            alice.post(f"/api/chat/conversations/{conversation}/messages", json={"content": "x" * 20_001}).status_code
            == 422
        )
        assert alice.delete(f"/api/chat/conversations/{conversation}").status_code == 204
        assert alice.get(f"/api/chat/conversations/{conversation}").status_code == 404
    with world.server.client(world.admin_key) as admin:
        # platform admins do not read other people's conversations either
        assert admin.get(f"/api/chat/conversations/{conversation}").status_code == 404


def test_knowledge_tool_when_namespaces_are_enabled(world: World, chat: Callable[[Plan], Script]) -> None:
    def plan(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
        returns = tool_returns(messages)
        if returns:
            return [f"Per {returns[0].content[0]['key']}: {returns[0].content[0]['content']}"]
        if "search_knowledge" in [t.name for t in info.function_tools]:
            return [call("search_knowledge", query="how long are backups kept")]
        return ["no knowledge tool"]

    script = chat(plan)
    with world.server.client(world.alice_key) as alice:
        stored = alice.post(
            "/api/knowledge/documents",
            json={"namespace": "chat-kb", "key": "backup-policy", "content": "Backups are kept for 35 days."},
        )
        assert stored.status_code == 201, stored.text
        conversation = new_conversation(alice)
        assert text_of(send(alice, conversation, "backups?")) == "no knowledge tool"
        set_ai(world, world.org_a, knowledge_namespaces=["chat-kb"])
        answer = text_of(send(alice, conversation, "backups?"))
    assert answer == "Per backup-policy: Backups are kept for 35 days."
    assert "chat-kb" in next(
        t.description for t in script.requests[-1][1].function_tools if t.name == "search_knowledge"
    )


def test_workflows_cannot_use_the_chat(world: World) -> None:
    from tests.platform.ai_support import run_workflow

    with world.server.client(world.alice_key) as alice:
        done = run_workflow(alice, "chat_from_workflow", {})
    assert done["result"].startswith("refused: The chat is for people"), done
