"""Agents as a boundary, over HTTP: agents assigned to roles are offered only to their holders, a user with
assigned agents sees only those, and an agent's tool list holds for everything the conversation runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.platform.conftest import World, browser_session, start_world

DEFAULT_AGENT_ID = "3c6f1f0e-5d0b-4c55-9a39-6a1d1c0a0001"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A world of its own: role assignments change which agents everyone sees."""
    w = start_world(tmp_path_factory.mktemp("agents-boundary"))
    try:
        yield w
    finally:
        w.server.stop()


def admin_in(world: World, org: str | None) -> httpx.Client:
    headers = {"X-Bifrost-Org": org} if org else {}
    return world.server.client(world.admin_key, **headers)


def role(world: World, org: str, name: str, *user_ids: str) -> str:
    with admin_in(world, org) as admin:
        created = admin.post("/api/roles", json={"name": name})
        assert created.status_code == 201, created.text
        if user_ids:
            assigned = admin.post(f"/api/roles/{created.json()['id']}/users", json={"user_ids": list(user_ids)})
            assert assigned.status_code == 204, assigned.text
    return created.json()["id"]  # type: ignore[no-any-return]


def names(client: httpx.Client) -> list[str]:
    response = client.get("/api/chat/agents")
    assert response.status_code == 200, response.text
    return [a["name"] for a in response.json()]


def run_command(client: httpx.Client, conversation: str, text: str) -> dict[str, Any]:
    response = client.post(
        f"/api/chat/conversations/{conversation}/messages", params={"wait": "true"}, json={"content": text}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def reply(turn: dict[str, Any]) -> str:
    return "".join(e["content"] for e in turn["events"] if e["type"] == "token")


def test_agents_assigned_to_roles_bound_what_a_user_sees_and_runs(aw: World) -> None:
    helpdesk = role(aw, aw.org_a, "Helpdesk", aw.alice_id)
    ops = role(aw, aw.org_b, "Ops")  # nobody holds it yet
    with admin_in(aw, aw.org_a) as admin:
        created = admin.post(
            "/api/chat/agents", json={"name": "Helpdesk agent", "tools": ["lookup_user"], "role_ids": [helpdesk]}
        )
        assert created.status_code == 201, created.text
        agent = created.json()
        assert agent["role_ids"] == [helpdesk] and agent["organization_id"] == aw.org_a
        # a role of another organization cannot be given to an organization's agent; unknown ids are named
        foreign = admin.post("/api/chat/agents", json={"name": "Wrong", "role_ids": [ops]})
        assert foreign.status_code == 422 and "another organization" in foreign.json()["detail"]
        unknown = admin.post("/api/chat/agents", json={"name": "Wrong", "role_ids": ["nope"]})
        assert unknown.status_code == 422 and "role_ids" in unknown.json()["detail"]
        assert admin.post("/api/chat/agents", json={"name": "Wrong", "role_ids": "x"}).status_code == 422
    with admin_in(aw, None) as admin:
        ops_agent = admin.post(
            "/api/chat/agents", json={"name": "Ops agent", "organization_id": None, "role_ids": [ops]}
        ).json()
        # platform admins see every agent
        assert {"Assistant", "Ops agent"} <= set(names(admin))

    with aw.server.client(aw.alice_key) as alice:
        # Alice holds Helpdesk: she sees only its agent, not the all-tools assistant nor the Ops agent
        assert names(alice) == ["Helpdesk agent"]
        for hidden in (DEFAULT_AGENT_ID, ops_agent["id"]):
            assert alice.get(f"/api/chat/agents/{hidden}").status_code == 404
            assert alice.get("/api/chat/tools", params={"agent_id": hidden}).status_code == 404
            assert alice.post("/api/chat/conversations", json={"agent_id": hidden}).status_code == 404
        tools = alice.get("/api/chat/tools", params={"agent_id": agent["id"]}).json()
        assert [t["name"] for t in tools] == ["lookup_user"]
        # a conversation without an agent gets her default: the Helpdesk agent, with its one tool
        conversation = alice.post("/api/chat/conversations", json={}).json()["id"]
        listed = reply(run_command(alice, conversation, "/tools"))
        assert "lookup_user" in listed and "reset_password" not in listed
        refused = run_command(alice, conversation, "/run reset_password email=x@a.example")
        assert "No tool named 'reset_password'" in reply(refused)
        assert not [e for e in refused["events"] if e["type"] in ("tool", "tool_update")]
        ran = run_command(alice, conversation, "/run lookup_user email=dana@a.example")
        assert reply(ran) == "lookup_user completed."
        # and the page offers only her agent
    with browser_session(aw, "alice@a.example", "alice-password") as alice_browser:
        page = alice_browser.get("/chat/", follow_redirects=True)
        assert page.status_code == 200 and "Helpdesk agent" in page.text and "Ops agent" not in page.text

    with aw.server.client(aw.bob_key) as bob:
        # Bob holds no role with an agent: he sees the agents assigned to nobody, not the Ops agent
        seen = names(bob)
        assert "Assistant" in seen and "Ops agent" not in seen and "Helpdesk agent" not in seen
    role_ops_users = admin_in(aw, aw.org_b)
    assert role_ops_users.post(f"/api/roles/{ops}/users", json={"user_ids": [aw.bob_id]}).status_code == 204
    role_ops_users.close()
    with aw.server.client(aw.bob_key) as bob:
        assert names(bob) == ["Ops agent"]  # now confined to his role's agent

    # Each assignment change is in the audit log once.
    with admin_in(aw, None) as admin:
        events = admin.get("/api/audit", params={"action": "chat_agent.roles_assigned"}).json()["events"]
        assert sorted(e["target_id"] for e in events) == sorted([agent["id"], ops_agent["id"]])


def test_the_tool_list_is_checked_when_the_call_runs(aw: World) -> None:
    """An agent narrowed after the conversation started: what it no longer lists does not run."""
    helpdesk = role(aw, aw.org_a, "Helpdesk 2", aw.alice_id)
    with admin_in(aw, aw.org_a) as admin:
        agent = admin.post(
            "/api/chat/agents",
            json={"name": "Narrowed agent", "tools": ["lookup_user", "reset_password"], "role_ids": [helpdesk]},
        ).json()
    with aw.server.client(aw.alice_key) as alice:
        conversation = alice.post("/api/chat/conversations", json={"agent_id": agent["id"]}).json()["id"]

    async def refusal(workflow: str) -> str | None:
        from app.db import transaction
        from app.services.chat.agents import ChatToolService
        from app.services.identity.auth import AuthService

        async with transaction(aw.server.platform.sessions) as session:
            actor = await AuthService(session).actor_for_user(aw.alice_id)
            return await ChatToolService(session).refusal(actor, agent["id"], workflow)

    assert aw.server.call(lambda: refusal("reset_password")) is None
    with admin_in(aw, aw.org_a) as admin:
        assert admin.patch(f"/api/chat/agents/{agent['id']}", json={"tools": ["lookup_user"]}).status_code == 200
    assert "is not a tool of the agent 'Narrowed agent'" in aw.server.call(lambda: refusal("reset_password"))
    with aw.server.client(aw.alice_key) as alice:
        turn = run_command(alice, conversation, "/run reset_password email=x@a.example")
        assert "No tool named 'reset_password'" in reply(turn)
        assert (
            reply(run_command(alice, conversation, "/run lookup_user email=dana@a.example")) == "lookup_user completed."
        )
