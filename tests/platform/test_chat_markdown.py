"""Assistant replies as Markdown in the chat page: streamed as text, swapped for server-rendered HTML when done.

Real HTTP against the live server, a scripted pydantic-ai model registered in this process. The
reply mixes Markdown with raw HTML and a ``javascript:`` link: the page must show the Markdown and
never a script element or a ``javascript:`` href; the API keeps the raw text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from tests.platform.ai_support import clear_ai, registered, set_ai, stream_function, tool_returns
from tests.platform.conftest import World
from tests.platform.pages_support import PageClient, alice

REPLY_CHUNKS = [
    "Here is **bold** text",
    " and a list:\n\n- one\n- two\n\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
    "```\nx = '<b>'\n```\n\n",
    "[site](https://example.com) <script>alert(1)</script> [x](javascript:alert(1))",
]
REPLY = "".join(REPLY_CHUNKS)


def reply_or_tool(messages: list[ModelMessage], info: AgentInfo) -> list[Any]:
    """Markdown straight away; for "look up", text then a tool call, then Markdown with its result."""
    returns = tool_returns(messages)
    if returns:
        return ["Found *", str(returns[0].content["result"]["name"]), "*."]
    prompt = str(messages[-1].parts[-1].content)  # type: ignore[union-attr]
    if "look up" in prompt:
        args = json.dumps({"email": "dana@a.example"})
        return ["Let me **check**.", {0: DeltaToolCall(name="lookup_user", json_args=args, tool_call_id="md-1")}]
    return REPLY_CHUNKS


@pytest.fixture
def markdown_model(world: World) -> Iterator[None]:
    model = FunctionModel(stream_function=stream_function(reply_or_tool), model_name="chat-markdown")
    with registered("chat-markdown", model):
        set_ai(world, model="custom:chat-markdown")
        yield
    clear_ai(world)


def sse_events(client: PageClient, turn_id: str) -> list[tuple[str, str]]:
    """The ``(event, data)`` pairs of a turn's stream, up to ``done`` (multi-line data joined by newlines)."""
    body = b""
    with client.http.stream("GET", f"/chat/turns/{turn_id}/live") as stream:
        for chunk in stream.iter_raw():
            body += chunk
            if b"event: done" in body:
                break
    events = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        lines = block.split("\n")
        kind = next((line[6:].strip() for line in lines if line.startswith("event:")), "")
        data = "\n".join(line[5:].removeprefix(" ") for line in lines if line.startswith("data:"))
        if kind:
            events.append((kind, data))
    return events


def send(client: PageClient, conversation: str, content: str) -> str:
    """Post a message as htmx does; returns the turn id the reply streams from."""
    sent = client.http.post(
        f"/chat/{conversation}/messages",
        data={"content": content, "_csrf_token": client.csrf},
        headers={"HX-Request": "true"},
    )
    assert sent.status_code == 200, sent.text
    found = re.search(r'sse-connect="/chat/turns/([^/"]+)/live"', sent.text)
    assert found, sent.text
    return found.group(1)


def assert_safe(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", html, re.I)


def rendered_reply(html: str) -> None:
    """The Markdown of REPLY, rendered."""
    assert "<strong>bold</strong>" in html
    assert "<li>one</li>" in html and "<li>two</li>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert "<pre><code>x = '&lt;b&gt;'" in html
    assert '<a href="https://example.com">site</a>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text, not run
    assert "[x](javascript:alert(1))" in html  # the link is dropped, its text stays
    assert_safe(html)


def test_a_finished_reply_is_swapped_for_rendered_markdown(world: World, markdown_model: None) -> None:
    with alice(world) as client:
        conversation = client.post("/chat/new", {}).headers["location"].rsplit("/", 1)[1]
        turn = send(client, conversation, "**not bold** <i>x</i>")
        events = sse_events(client, turn)
        chats = [data for kind, data in events if kind == "chat"]
        # while it is written: plain text tokens (escaped), appended to the bubble
        tokens = [data for data in chats if data.startswith(f'<span hx-swap-oob="beforeend:#turn-{turn}-seg-0">')]
        assert len(tokens) == len(REPLY_CHUNKS) and "<strong>" not in "".join(tokens)
        assert "&lt;script&gt;" in "".join(tokens)
        # when done: the bubble is replaced by the Markdown rendered on the server
        last = chats[-1]
        bubble = re.search(rf'<div class="bubble md" id="turn-{turn}-seg-0" hx-swap-oob="true">(.*?)</div>', last, re.S)
        assert bubble, last
        rendered_reply(bubble.group(1))
        assert f'id="turn-{turn}-typing"' in last
        for data in chats:
            assert_safe(data)

        # a reload shows the stored reply as Markdown too; the user's message stays plain text
        page = client.get(f"/chat/{conversation}").text
        stored = re.search(r'<li class="msg assistant">.*?<div class="bubble md">(.*?)</div></li>', page, re.S)
        assert stored, page
        rendered_reply(stored.group(1))
        user = re.search(r'<li class="msg user">.*?<div class="bubble">(.*?)</div></li>', page, re.S)
        assert user and user.group(1) == "**not bold** &lt;i&gt;x&lt;/i&gt;"
        assert_safe(page.split('id="messages"', 1)[1])

    # the API keeps the raw text
    with world.server.client(world.alice_key) as api:
        messages = api.get(f"/api/chat/conversations/{conversation}").json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "**not bold** <i>x</i>"), ("assistant", REPLY)]


def test_text_before_a_tool_call_is_rendered_when_the_call_starts(world: World, markdown_model: None) -> None:
    with alice(world) as client:
        conversation = client.post("/chat/new", {}).headers["location"].rsplit("/", 1)[1]
        turn = send(client, conversation, "look up dana")
        chats = [data for kind, data in sse_events(client, turn) if kind == "chat"]
        first_tool = next(data for data in chats if 'class="tool-call"' in data)
        assert (
            f'<div class="bubble md" id="turn-{turn}-seg-0" hx-swap-oob="true"><p>Let me <strong>check</strong>.</p>'
            in (first_tool)
        )
        done = chats[-1]
        assert f'id="turn-{turn}-seg-1" hx-swap-oob="true"><p>Found <em>Dana</em>.</p>' in done
        page = client.get(f"/chat/{conversation}").text
        assert "<p>Let me <strong>check</strong>.</p>" in page and "<p>Found <em>Dana</em>.</p>" in page
