"""The chat and AI admin pages over real HTTP (no browser): access, CSRF, forms, fragments and the SSE stream."""

from __future__ import annotations

import re

import httpx

from tests.platform.ai_support import clear_ai
from tests.platform.conftest import World
from tests.platform.pages_support import admin, alice, bob, text


def test_ai_admin_page_is_for_platform_admins(world: World) -> None:
    with alice(world) as client:
        assert client.get("/admin/ai").status_code == 403
        assert client.post("/admin/ai/tools/lookup_user", {"needs_approval": "true"}).status_code == 403
        assert client.post("/admin/ai/settings", {"scope": "global", "model": "openai:gpt-4o-mini"}).status_code == 403
    with admin(world) as client:
        page = client.get("/admin/ai")
        assert page.status_code == 200 and 'data-tool="lookup_user"' in page.text and "not_a_tool" not in page.text
        assert "Assistant" in page.text  # the built-in default agent
        # require approval, then see it on the page and in the API
        assert client.post("/admin/ai/tools/lookup_user", {"needs_approval": "true"}).status_code == 303
        row = re.search(r'<tr data-tool="lookup_user">.*?</tr>', client.get("/admin/ai").text, re.S)
        assert row and "yes" in text(row.group(0))
        client.post("/admin/ai/tools/lookup_user", {"needs_approval": "false"})
        # a bad model is refused with the reason, nothing saved
        client.post("/admin/ai/settings", {"scope": "global", "model": "gpt-4o"})
        after = client.get("/admin/ai").text
        assert "Not saved: model: model 'gpt-4o' must be 'provider:model'" in text(after)
        assert 'value="gpt-4o"' not in after
        # a good one is saved
        client.post("/admin/ai/settings", {"scope": "global", "model": "custom:nothing-here"})
        assert 'value="custom:nothing-here"' in client.get("/admin/ai").text
        # agents are created from the page
        client.post(
            "/admin/ai/agents", {"name": "Page agent", "tools": "lookup_user, reset_password", "is_active": "true"}
        )
        with world.server.client(world.admin_key) as api:
            agents = {a["name"]: a for a in api.get("/api/chat/agents").json()}
        assert agents["Page agent"]["tools"] == ["lookup_user", "reset_password"]
    clear_ai(world)


def test_chat_pages_are_private_and_post_with_csrf(world: World) -> None:
    with alice(world) as client:
        created = client.post("/chat/new", {})
        assert created.status_code == 303
        conversation = created.headers["location"].rsplit("/", 1)[1]
        page = client.get(f"/chat/{conversation}")
        assert page.status_code == 200 and 'id="chat-form"' in page.text
        assert client.post(f"/chat/{conversation}/rename", {"title": "Laptop order"}).status_code == 303
        assert "Laptop order" in client.get(f"/chat/{conversation}").text
        # htmx: the message and the reply's live container come back as list items
        sent = client.http.post(
            f"/chat/{conversation}/messages",
            data={"content": "/tools", "_csrf_token": client.csrf},
            headers={"HX-Request": "true"},
        )
        assert sent.status_code == 200 and '<li class="msg user">' in sent.text
        turn = re.search(r'sse-connect="/chat/turns/([^/]+)/live"', sent.text)
        assert turn
        with client.http.stream("GET", f"/chat/turns/{turn.group(1)}/live") as stream:
            body = b""
            for chunk in stream.iter_raw():
                body += chunk
                if b"event: done" in body:
                    break
        decoded = body.decode()
        assert "event: chat" in decoded and "lookup_user(email)" in decoded and "hx-swap-oob" in decoded
        # an empty message is answered with the reason, in the list
        empty = client.http.post(
            f"/chat/{conversation}/messages",
            data={"content": " ", "_csrf_token": client.csrf},
            headers={"HX-Request": "true"},
        )
        assert "must be non-empty text" in empty.text
        # no CSRF token: refused
        assert client.post(f"/chat/{conversation}/rename", {"title": "x"}, csrf=False).status_code == 403
    with bob(world) as other:
        assert other.get(f"/chat/{conversation}").status_code == 404
        assert other.post(f"/chat/{conversation}/delete").status_code == 404
        # someone else's turn stream says it is over, without showing anything
        with other.http.stream("GET", f"/chat/turns/{turn.group(1)}/live") as stream:
            first = next(stream.iter_raw())
        assert b"lookup_user" not in first
    with alice(world) as client:
        assert client.post(f"/chat/{conversation}/delete").status_code == 303
        assert client.get(f"/chat/{conversation}").status_code == 404


def test_chat_page_without_a_session_goes_to_login(world: World) -> None:
    with httpx.Client(base_url=world.server.url) as client:
        response = client.get("/chat")
        assert response.status_code == 303 and response.headers["location"] == "/login?next=/chat"
