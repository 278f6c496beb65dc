"""A server stopped mid-turn: the next start-up ends the turns it left (SQLite file, then Postgres when set).

The leftovers are written straight into the database, as a stopped server leaves them; then the
server restarts on the same database and its start-up recovery runs for real. Finished turns and
calls waiting for approval stay as they are; a new message can be sent in every conversation.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart

from agents.chat import dump_history
from tests.conftest import LiveServer
from tests.platform.ai_support import echo_model, registered, set_ai
from tests.platform.conftest import start_world
from tests.platform.pages_support import alice, text

NOTICE = "The server restarted while this reply was being written"


async def leave_turns(platform: Any, ids: dict[str, str]) -> None:
    """Write what a server stopped mid-turn leaves, and turns that ended normally, into the database."""
    from app.db import transaction
    from app.models.ai import ChatConversation
    from app.services.chat.conversations import ConversationService

    async with transaction(platform.sessions) as session:
        service = ConversationService(session)

        async def conversation(key: str) -> ChatConversation:
            found = await session.get(ChatConversation, ids[key])
            assert found is not None
            return found

        # 1. the reply was streaming, nothing of it stored yet
        c = await conversation("streaming")
        await service.add_message(c, "user", "Hello?", "t-1")
        # 2. part of the reply stored (before a tool call), the call running
        c = await conversation("tool_running")
        await service.add_message(c, "user", "Who is dana?", "t-2")
        await service.add_message(c, "assistant", "Let me **check**.", "t-2")
        await service.add_tool_call(
            c, "t-2", "lookup_user", {"email": "dana@a.example"}, status="running", model_call_id="m-2"
        )
        # 3. a call approved, the continuing turn lost before it ran; the history ends with the unanswered call
        c = await conversation("approved")
        c.history = dump_history(
            [
                ModelRequest(parts=[UserPromptPart("reset erin")]),
                ModelResponse(parts=[ToolCallPart("reset_password", {"email": "erin@a.example"}, tool_call_id="m-3")]),
            ]
        )
        await service.add_message(c, "user", "reset erin", "t-3")
        await service.add_tool_call(
            c, "t-3", "reset_password", {"email": "erin@a.example"}, status="approved", model_call_id="m-3",
            needs_approval=True,
        )  # fmt: skip
        # 4. ended normally with a reply
        c = await conversation("finished")
        await service.add_message(c, "user", "Hi", "t-4")
        await service.add_message(c, "assistant", "Hello!", "t-4")
        # 5. waiting for the user's approval: alive across restarts
        c = await conversation("awaiting")
        await service.add_message(c, "user", "reset fay", "t-5")
        await service.add_tool_call(
            c, "t-5", "reset_password", {"email": "fay@a.example"}, status="awaiting_approval", model_call_id="m-5",
            needs_approval=True,
        )  # fmt: skip
        # 6. ended normally after a tool call, with an empty answer (the history holds the result)
        c = await conversation("empty_answer")
        c.history = dump_history(
            [
                ModelRequest(parts=[UserPromptPart("who is gus")]),
                ModelResponse(parts=[ToolCallPart("lookup_user", {"email": "gus@a.example"}, tool_call_id="m-6")]),
                ModelRequest(parts=[ToolReturnPart("lookup_user", {"status": "Completed"}, tool_call_id="m-6")]),
                ModelResponse(parts=[TextPart("")]),
            ]
        )
        await service.add_message(c, "user", "who is gus", "t-6")
        call = await service.add_tool_call(
            c, "t-6", "lookup_user", {"email": "gus@a.example"}, status="running", model_call_id="m-6"
        )
        call.status = "completed"


def messages(api: Any, conversation: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/chat/conversations/{conversation}")
    assert response.status_code == 200, response.text
    return response.json()["messages"]  # type: ignore[no-any-return]


def test_start_up_ends_the_turns_a_stopped_server_left(tmp_path: Path, database_url: str) -> None:
    world = start_world(tmp_path, database_url)
    try:
        with world.server.client(world.alice_key) as api:
            keys = ["streaming", "tool_running", "approved", "finished", "awaiting", "empty_answer"]
            ids = {key: api.post("/api/chat/conversations", json={"title": key}).json()["id"] for key in keys}
        world.server.call(lambda: leave_turns(world.server.platform, ids))
    finally:
        world.server.stop()

    restarted = dataclasses.replace(world, server=LiveServer(world.server.settings).start())
    try:
        with restarted.server.client(restarted.alice_key) as api:
            streaming = messages(api, ids["streaming"])
            assert [m["role"] for m in streaming] == ["user", "notice"]
            assert streaming[1]["content"].startswith(NOTICE)

            running = messages(api, ids["tool_running"])
            assert [m["role"] for m in running] == ["user", "assistant", "tool", "notice"]
            assert running[1]["content"] == "Let me **check**."  # the stored part of the reply is kept
            call = running[2]["tool_call"]
            assert call["status"] == "interrupted" and "server stopped" in call["error"]

            approved = messages(api, ids["approved"])
            assert [m["role"] for m in approved] == ["user", "tool", "notice"]
            assert approved[1]["tool_call"]["status"] == "interrupted"

            # finished turns and a call waiting for approval are left alone
            assert [m["role"] for m in messages(api, ids["finished"])] == ["user", "assistant"]
            assert [m["role"] for m in messages(api, ids["empty_answer"])] == ["user", "tool"]
            awaiting = messages(api, ids["awaiting"])
            assert [m["role"] for m in awaiting] == ["user", "tool"]
            assert awaiting[1]["tool_call"]["status"] == "awaiting_approval"

            # the page shows the call ended, the notice, and the form to write again
        with alice(restarted) as client:
            page = client.get(f"/chat/{ids['tool_running']}").text
            card = re.search(r'<div class="tool-call"[^>]*data-status="interrupted".*?</div>\s*</li>', page, re.S)
            assert card and "interrupted" in text(card.group(0))
            assert NOTICE in text(page) and 'id="chat-form"' in page and 'id="still-writing"' not in page
            assert "<strong>check</strong>" in page

        # start-up recovery again changes nothing (idempotent)
        from app.services.chat.turns import recover_interrupted_turns

        assert restarted.server.call(lambda: recover_interrupted_turns(restarted.server.platform.sessions)) == 0

        # a new message is answered in each interrupted conversation (the lost call is closed in the history)
        with (
            registered("recovery-echo", echo_model("recovery-echo")),
            restarted.server.client(restarted.alice_key) as api,
        ):
            set_ai(restarted, model="custom:recovery-echo")
            for key in ("streaming", "tool_running", "approved"):
                sent = api.post(
                    f"/api/chat/conversations/{ids[key]}/messages", params={"wait": "true"}, json={"content": "again"}
                )
                assert sent.status_code == 200, sent.text
                kinds = [e["type"] for e in sent.json()["events"]]
                assert "notice" not in kinds and "token" in kinds, (key, sent.json())
                assert messages(api, ids[key])[-1]["role"] == "assistant"
    finally:
        restarted.server.stop()
