"""The log lines a queue server keeps from the bus for viewers joining late (app/engine/recent_logs.py), attacked.

A server's hub keeps the recent lines of every run of the cluster, whoever may see them: the live views
(API ``stream``, SDK ``stream``, the run page's ``live``) must hand them only to whoever may read the run,
and render a hostile line as text. Here the live server's hub is given kept lines the way a queue server's
hub gets them from the bus (the bus itself is tested in tests/engine/test_event_hub.py and tests/scale).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.engine.recent_logs import RecentLogs
from tests.platform.conftest import World, browser_session

SECRET = "bob-kept-secret"
HOSTILE = "<script>alert('kept')</script>"


def _kept_line(seq: int, message: str) -> str:
    return json.dumps(
        {
            "type": "log",
            "seq": seq,
            "timestamp": "2026-12-06T21:00:00+00:00",
            "level": "INFO",
            "logger": "w",
            "message": message,
        }
    )


@pytest.fixture
def bobs_run(world: World) -> Iterator[str]:
    """A run of Bob's (org B) still running on another node, whose two lines only this server's hub holds."""
    from app.db import transaction
    from app.models import Execution

    async def setup() -> str:
        async with transaction(world.server.platform.sessions) as session:
            run = Execution(
                workflow_id="w-kept",
                workflow_name="kept",
                organization_id=world.org_b,
                executed_by=world.bob_id,
                status="Running",
                node="node-elsewhere",
            )
            session.add(run)
        recent = RecentLogs()
        recent.add(run.id, _kept_line(0, SECRET))
        recent.add(run.id, _kept_line(1, HOSTILE))
        world.server.platform.hub.recent = recent
        return run.id

    execution_id = world.server.call(setup)
    try:
        yield execution_id
    finally:

        async def teardown() -> None:
            world.server.platform.hub.recent = None

        world.server.call(teardown)


def _log_events(response: httpx.Response, count: int) -> list[str]:
    """The data of the first ``count`` ``log`` events of a stream."""
    found: list[str] = []
    event = ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line.split(":", 1)[1].strip()
            if not data and not event:  # the keep-alive, after 15 s without an event
                pytest.fail(f"15 s without a line after {len(found)} of {count}")
            if event == "log":
                found.append(data)
                if len(found) == count:
                    break
            event = ""
    return found


def test_kept_lines_reach_only_who_may_read_the_run(world: World, bobs_run: str) -> None:
    with world.server.client(world.alice_key) as alice:
        for prefix in ("/api", "/api/sdk/v1"):
            refused = alice.get(f"{prefix}/executions/{bobs_run}/stream")
            assert refused.status_code == 404, refused.text
            assert SECRET not in refused.text
    with world.server.client() as anonymous:
        assert anonymous.get(f"/api/executions/{bobs_run}/stream").status_code == 401
    with browser_session(world, "alice@a.example", "alice-password") as alice_browser:
        page = alice_browser.get(f"/executions/{bobs_run}/live")
        assert page.status_code in (403, 404) and SECRET not in page.text
    # Bob (positive control): both kept lines, before anything was stored.
    with world.server.client(world.bob_key) as bob, bob.stream("GET", f"/api/executions/{bobs_run}/stream") as stream:
        assert stream.status_code == 200
        lines = [json.loads(data) for data in _log_events(stream, 2)]
    assert [(line["seq"], line["message"]) for line in lines] == [(0, SECRET), (1, HOSTILE)]


def test_a_hostile_kept_line_is_shown_as_text_on_the_run_page(world: World, bobs_run: str) -> None:
    with (
        browser_session(world, "bob@b.example", "bob-password") as bob,
        bob.stream("GET", f"/executions/{bobs_run}/live") as page,
    ):
        assert page.status_code == 200
        fragments = _log_events(page, 2)
    assert SECRET in fragments[0]
    assert "<script>" not in fragments[1] and "&lt;script&gt;" in fragments[1]
