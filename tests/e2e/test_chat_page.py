"""The chat page in headless Chromium against a fake OpenAI-compatible server on 127.0.0.1.

The real provider path end to end: platform settings name ``openai:gpt-4o-mini`` with the fake's
base URL and an API key kept as a config secret; the fake streams tokens over SSE and calls tools;
the page shows the reply token by token, the tool call with its execution, and approval buttons.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser_support import login
from tests.fakes.openai_server import FakeOpenAI, Reply, last_message, reply_text, reply_tool_call
from tests.platform.access_support import grant_role
from tests.platform.ai_support import clear_ai, set_ai
from tests.platform.conftest import World

pytestmark = pytest.mark.e2e

API_KEY = "sk-fake-e2e"


def script(body: dict[str, Any]) -> Reply:
    last = last_message(body)
    if last.get("role") == "tool":
        result = json.loads(last["content"])
        if result.get("status") == "Completed" and "name" in result.get("result", {}):
            return reply_text("", chunks=["The user ", f"{result['result']['name']} ", "is active."])
        return reply_text("", chunks=["Done: ", json.dumps(result.get("result") or result.get("error"))])
    text = str(last.get("content") or "").lower()
    if "who is" in text:
        return reply_tool_call("lookup_user", {"email": "dana@a.example"})
    if "reset" in text:
        return reply_tool_call("reset_password", {"email": "erin@a.example"})
    if "markdown" in text:
        return reply_text(
            "", chunks=["Two **steps**:\n\n", "- open\n", "- close\n\n", "<script>window.pwned = 1</script>"]
        )
    return reply_text("", chunks=["Hello ", "from ", "the ", "fake ", "model."])


@pytest.fixture
def fake_llm(world: World) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(script, api_key=API_KEY) as fake, world.server.client(world.admin_key) as admin:
        stored = admin.put("/api/config/e2e_openai_key", json={"value": API_KEY, "is_secret": True})
        assert stored.status_code == 200, stored.text
        set_ai(world, model="openai:gpt-4o-mini", base_url=fake.base_url, api_key_config="e2e_openai_key")
        yield fake
        clear_ai(world)
        admin.put("/api/chat/tools/reset_password", json={"needs_approval": False})
        admin.put("/api/workflows/reset_password/access", json={"allow_self_approval": False, "approver_role": None})


def ask(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#send")


def test_chat_streams_runs_a_tool_and_keeps_the_conversation(world: World, page: Any, fake_llm: FakeOpenAI) -> None:
    login(page, world, "alice@a.example", "alice-password")
    page.click("nav.mainnav >> text=Chat")
    page.click("#new-conversation")
    page.wait_for_selector("#chat-form")
    assert page.locator("#no-model").count() == 0

    ask(page, "Hi there")
    bubble = page.locator(".turn .msg.assistant .bubble").last
    bubble.wait_for()
    # the first message names the conversation: heading and list follow without a reload
    page.locator("#conversation-title", has_text="Hi there").wait_for()
    assert page.locator('#conversation-list a[aria-current="page"]').inner_text() == "Hi there"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.turn .msg.assistant .bubble')].some(b => b.textContent.trim() === 'Hello from the fake model.')"
    )

    # a Markdown reply streams as text, then the finished bubble shows the Markdown rendered on the server
    ask(page, "Some markdown please")
    page.locator(".turn .msg.assistant .bubble.md strong", has_text="steps").wait_for()
    assert page.locator(".turn .msg.assistant .bubble.md li").all_inner_texts() == ["open", "close"]
    assert page.evaluate(
        "() => window.pwned === undefined && document.querySelectorAll('#messages script').length === 0"
    )

    ask(page, "Who is dana@a.example?")
    card = page.locator(".tool-call[data-status=completed]").last
    card.wait_for()
    assert "lookup_user" in card.inner_text() and "dana@a.example" in card.inner_text()
    execution_link = card.locator("a", has_text="execution").get_attribute("href")
    assert execution_link and execution_link.startswith("/executions/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.turn .msg.assistant .bubble')].some(b => b.textContent.trim() === 'The user Dana is active.')"
    )
    # the tool schema and the API key reached the provider
    offered = [t["function"]["name"] for t in fake_llm.requests[-2]["tools"]]
    assert "lookup_user" in offered and "not_a_tool" not in offered

    page.reload()
    roles = page.locator("#messages > li").evaluate_all("items => items.map(i => i.className)")
    assert roles == ["msg user", "msg assistant", "msg user", "msg assistant", "msg user", "msg tool", "msg assistant"]
    assert page.locator("#messages .msg.assistant .bubble.md strong", has_text="steps").count() == 1
    assert page.locator("#messages .tool-call[data-status=completed]").count() == 1
    assert page.locator("#conversation-title").inner_text() == "Hi there"
    assert page.console_errors == []


def test_approval_buttons_gate_the_call(world: World, page: Any, fake_llm: FakeOpenAI) -> None:
    # Needs approval is the workflow's (its run waits for an approver): here Alice holds its approver role
    # and may approve her own runs.
    grant_role(world, world.org_a, world.alice_id, "Resetters")
    with world.server.client(world.admin_key) as admin:
        assert admin.put("/api/chat/tools/reset_password", json={"needs_approval": True}).status_code == 200
        allowed = admin.put(
            "/api/workflows/reset_password/access", json={"allow_self_approval": True, "approver_role": "Resetters"}
        )
        assert allowed.status_code == 200
    login(page, world, "alice@a.example", "alice-password")
    page.goto(f"{world.server.url}/chat")
    page.click("#new-conversation")
    ask(page, "Please reset erin's password")
    waiting = page.locator(".tool-call[data-status=awaiting_approval]")
    waiting.wait_for()
    assert "erin@a.example" in waiting.inner_text()
    # the waiting run links to its approval; nothing of it ran yet
    approval = waiting.locator("a.badge-approval").get_attribute("href") or ""
    assert re.fullmatch(r"/approvals/[0-9a-f-]+", approval)
    with world.server.client(world.alice_key) as alice:
        assert alice.get(f"/api/executions/{approval.rsplit('/', 1)[1]}").json()["status"] == "AwaitingApproval"
    waiting.locator("button", has_text="Approve").click()
    done = page.locator(".tool-call[data-status=completed]")
    done.wait_for()
    assert "reset_password" in done.inner_text()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg.assistant .bubble')].some(b => b.textContent.startsWith('Done: '))"
    )
    assert page.console_errors == []


def test_without_a_model_the_page_says_so_and_commands_run(world: World, page: Any) -> None:
    clear_ai(world)
    login(page, world, "bob@b.example", "bob-password")
    page.goto(f"{world.server.url}/chat")
    page.click("#new-conversation")
    assert "ask your administrator" in page.locator("#no-model").inner_text()  # a technician: no how-to
    ask(page, "/run lookup_user email=zoe@b.example")
    page.locator(".tool-call[data-status=completed]").wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg.assistant .bubble')].some(b => b.textContent.trim() === 'lookup_user completed.')"
    )
    assert page.console_errors == []
