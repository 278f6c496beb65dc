"""Issue 19, chat: command conversations get a real title, technicians a short notice without a model,
and `/run` results read like the run page (tables, "No rows.") rather than raw JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from app.services.chat.conversations import retitle, title_from
from app.web.markdown import register_filters
from tests.platform.ai_support import clear_ai
from tests.platform.conftest import World
from tests.platform.test_chat_api import new_conversation, send

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_titles_from_commands_then_from_the_first_real_message() -> None:
    assert title_from("/tools") == "Tools" and title_from("/help") == "Help"
    assert title_from("/run lookup_user email=a@b.c") == "Run lookup_user"
    assert retitle("New conversation", "/tools") and retitle("Tools", "my laptop is broken")
    assert not retitle("Tools", "/run x") and not retitle("Laptop order", "hello")


def test_conversation_started_with_tools_is_titled_by_its_first_real_message(world: World) -> None:
    clear_ai(world, world.org_a, world.org_b)
    with world.server.client(world.alice_key) as alice:
        conversation = new_conversation(alice)
        send(alice, conversation, "/tools")
        first = alice.get(f"/api/chat/conversations/{conversation}").json()["title"]
        send(alice, conversation, "My laptop will not boot")
        second = alice.get(f"/api/chat/conversations/{conversation}").json()["title"]
        send(alice, conversation, "/tools")
        third = alice.get(f"/api/chat/conversations/{conversation}").json()["title"]
    assert (first, second, third) == ("Tools", "My laptop will not boot", "My laptop will not boot")


def test_without_a_model_technicians_get_a_notice_and_admins_the_how_to(world: World) -> None:
    clear_ai(world, world.org_a, world.org_b)
    with world.server.client(world.alice_key) as alice:
        tech_turn = send(alice, new_conversation(alice), "hello")
    with world.server.client(world.admin_key) as admin:
        admin_turn = send(admin, new_conversation(admin), "hello")
    tech = next(e["content"] for e in tech_turn["events"] if e["type"] == "notice")
    admin_notice = next(e["content"] for e in admin_turn["events"] if e["type"] == "notice")
    assert "ask your administrator" in tech and "/admin/ai" not in tech and "BIFROST_AI_MODEL" not in tech
    assert "/admin/ai" in admin_notice and "BIFROST_AI_MODEL" in admin_notice


def _card(result: Any) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)

    class Engine:
        engine = env

    register_filters(Engine)
    call = {"id": "c1", "status": "completed", "workflow": "list_things", "execution_id": "e1", "arguments": {}}
    call |= {"result": result, "result_text": "raw", "error": None}
    return env.get_template("partials/_chat_tool_call.html").render(c=call, oob=False)


def test_run_results_in_chat_read_like_the_run_page() -> None:
    table = _card([{"name": "Ada", "team": "ops"}, {"name": "Grace", "team": "dev"}])
    assert '<th scope="col">name</th>' in table and '<td data-label="team">ops</td>' in table
    assert "No rows." in _card([]) and "An empty result" in _card({})
    card = _card({"status": "ok"})
    result = card.split('aria-label="Result">', 1)[1].split("<details>", 1)[0]
    assert '<table class="kv">' in result and "<pre" not in result  # a table, not a JSON dump
