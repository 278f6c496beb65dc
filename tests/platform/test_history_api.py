"""History pages over HTTP and the SDK: cursor headers, the executions page's links, clear 422s."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import bifrost
from bifrost import executions
from bifrost.errors import ValidationError
from tests.platform.conftest import World


def _run(world: World, key: str, count: int) -> None:
    with world.server.client(key) as client:
        for a in range(count):
            response = client.post("/api/workflows/add/execute?wait=true", json={"params": {"a": a, "b": 1}})
            assert response.status_code == 200, response.text


def test_api_pages_by_cursor_give_the_whole_list(world: World) -> None:
    _run(world, world.alice_key, 7)
    with world.server.client(world.alice_key) as client:
        everything = client.get("/api/executions", params={"limit": 1000}).json()
        assert len(everything) >= 7
        seen: list[str] = []
        params: dict[str, str | int] = {"limit": 3, "workflow_name": "add"}
        while True:
            response = client.get("/api/executions", params=params)
            assert response.status_code == 200
            seen += [row["execution_id"] for row in response.json()]
            following = response.headers.get("x-next-cursor")
            if following is None:
                assert "link" not in response.headers
                break
            # The Link header repeats the filters with the cursor.
            assert re.fullmatch(
                r"</api/executions\?limit=3&workflow_name=add&cursor=[\w-]+>; rel=\"next\"", response.headers["link"]
            )
            params["cursor"] = following
        assert seen == [row["execution_id"] for row in everything if row["workflow_name"] == "add"]
        bad = client.get("/api/executions", params={"cursor": "garbage"})
        assert bad.status_code == 422 and bad.json()["extra"]["errors"][0]["field"] == "cursor"
        both = client.get("/api/executions", params={"cursor": following or params["cursor"], "offset": 3})
        assert both.status_code == 422 and both.json()["extra"]["errors"][0]["field"] == "offset"


def _seed(world: World, count: int, org_id: str | None, user_id: str) -> None:
    """Completed runs of ``add`` written straight into the history (no worker needed)."""
    from sqlalchemy import insert

    from app.db import transaction
    from app.models import Execution
    from app.models.base import utcnow

    rows: list[dict[str, object]] = [
        {
            "workflow_id": "w",
            "workflow_name": "add",
            "organization_id": org_id,
            "executed_by": user_id,
            "status": "Completed",
            "input_data": {},
            "created_at": utcnow(),
            "id": f"00000000-0000-4000-8000-{user_id[:4]}{n:08d}",
        }
        for n in range(count)
    ]

    async def write() -> None:
        async with transaction(world.server.platform.sessions) as session:
            await session.execute(insert(Execution), rows)

    world.server.call(write)


@pytest.fixture
def as_alice(world: World) -> Iterator[None]:
    bifrost.configure(world.server.url, world.alice_key)
    yield
    bifrost.configure(None)


async def test_sdk_list_page_and_iteration(world: World, as_alice: None) -> None:
    _seed(world, 5, world.org_a, world.alice_id)
    everything = await executions.list(limit=1000)
    first = await executions.list_page(limit=2)
    assert [e.execution_id for e in first.executions] == [e.execution_id for e in everything[:2]]
    assert first.next_cursor is not None
    second = await executions.list(limit=2, cursor=first.next_cursor)  # the spec's call, plus a cursor
    assert [e.execution_id for e in second] == [e.execution_id for e in everything[2:4]]
    assert [e.execution_id async for e in executions.iter_executions(page_size=3)] == [
        e.execution_id for e in everything
    ]
    with pytest.raises(ValidationError) as caught:
        await executions.list(cursor="nope")
    assert caught.value.errors[0]["field"] == "cursor"


def test_history_page_links_older_and_newer_by_cursor(world: World) -> None:
    _seed(world, 60, None, world.admin_id)
    with world.server.client(world.admin_key) as client:
        api = [row["execution_id"] for row in client.get("/api/executions", params={"limit": 1000}).json()]
    assert len(api) > 50, "the module's runs fill more than one page"
    with world.server.client(world.admin_key) as client:
        first = client.get("/executions")
        assert first.status_code == 200
        older = re.search(r'href="/executions\?(cursor=[^"]+)" rel="next"', first.text)
        assert older and 'rel="prev"' not in first.text
        second = client.get(f"/executions?{older.group(1)}")
        ids = re.findall(r'href="/executions/([0-9a-f-]{36})"', second.text)
        assert ids and ids[0] == api[50]
        newer = re.search(r'href="/executions\?(before=[^"]+)" rel="prev"', second.text)
        assert newer
        back = client.get(f"/executions?{newer.group(1)}")
        assert re.findall(r'href="/executions/([0-9a-f-]{36})"', back.text)[:1] == api[:1]
        assert client.get("/executions?cursor=garbage").status_code == 200  # shown as the form's error
