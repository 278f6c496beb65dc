"""Registering external MCP servers (platform admins): validation, the token kept as a config secret, audit,
the tool check against a small MCP server started here on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.platform.conftest import World
from tests.platform.mcp_support import ToyMcpServer, start_mcp_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_mcp_world(tmp_path_factory.mktemp("mcp_registry"))
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


def test_registration_is_admin_only_audited_and_keeps_the_token_secret(world: World, toy: ToyMcpServer) -> None:
    with world.server.client(world.alice_key) as alice:
        refused = alice.post("/api/mcp/servers", json={"name": "evil", "url": toy.url})
        assert refused.status_code == 403
    with world.server.client(world.admin_key) as admin:
        bad = admin.post("/api/mcp/servers", json={"name": "Bad Name!", "url": "ftp://x"})
        assert bad.status_code == 422 and bad.json()["extra"]["errors"][0]["field"] == "name"
        server = admin.post(
            "/api/mcp/servers",
            json={"name": "toy-check", "url": toy.url, "headers": {"Authorization": f"Bearer {ToyMcpServer.TOKEN}"}},
        ).json()
        assert server["headers"] == {"Authorization": "mcp/toy-check/authorization"}
        assert ToyMcpServer.TOKEN not in json.dumps(admin.get("/api/mcp/servers").json())
        secret = admin.get("/api/config/mcp/toy-check/authorization", params={"org": "GLOBAL"}).json()
        assert secret["is_secret"] is True and secret["masked"] is True
        tools = admin.get(f"/api/mcp/servers/{server['id']}/tools").json()
        assert {t["name"] for t in tools} == {"forecast", "broken"}
        events = admin.get("/api/audit", params={"action": "mcp_server.registered"}).json()
        event = next(e for e in events["events"] if e["target_id"] == server["id"])
        assert event["details"]["header_names"] == ["Authorization"] and ToyMcpServer.TOKEN not in json.dumps(event)
        # A wrong token: the check says what the server answered, never a 500.
        admin.patch(f"/api/mcp/servers/{server['id']}", json={"headers": {"Authorization": "Bearer wrong"}})
        assert admin.get(f"/api/mcp/servers/{server['id']}/tools").status_code == 502
        assert admin.delete(f"/api/mcp/servers/{server['id']}").json() == {"deleted": True}
