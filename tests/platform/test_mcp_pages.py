"""/admin/mcp: platform admins register an MCP server with a form (token kept secret); technicians are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.platform.conftest import World, browser_session
from tests.platform.mcp_support import ToyMcpServer, start_mcp_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp_pages"))
    try:
        yield w
    finally:
        w.server.stop()


def test_admins_register_a_server_from_the_page(world: World) -> None:
    with world.server.client(world.admin_key) as admin:
        agent = admin.post("/api/chat/agents", json={"name": "Page agent"}).json()
    with browser_session(world) as page:
        assert "Register a server" in page.get("/admin/mcp").text
        form = {
            "name": "paged",
            "url": "http://127.0.0.1:9/mcp",
            "header_name": "Authorization",
            "header_value": f"Bearer {ToyMcpServer.TOKEN}",
            "tools": "forecast",
            "agent_ids": agent["id"],
        }
        posted = page.post("/admin/mcp", data=form, follow_redirects=True)
        assert posted.status_code == 200 and "MCP server paged registered." in posted.text
        assert 'data-server="paged"' in posted.text and ToyMcpServer.TOKEN not in posted.text
        bad = page.post("/admin/mcp", data={"name": "Bad!", "url": "x"}, follow_redirects=True)
        assert "Not registered: name: " in bad.text or "Not registered" in bad.text
    with world.server.client(world.admin_key) as admin:
        [server] = [s for s in admin.get("/api/mcp/servers").json() if s["name"] == "paged"]
    assert server["agent_ids"] == [agent["id"]] and server["tools"] == ["forecast"]
    assert server["headers"] == {"Authorization": "mcp/paged/authorization"}
    with browser_session(world, "alice@a.example", "alice-password") as page:
        assert page.get("/admin/mcp").status_code == 403
        assert page.post("/admin/mcp", data={"name": "x", "url": "http://127.0.0.1:9/mcp"}).status_code == 403
