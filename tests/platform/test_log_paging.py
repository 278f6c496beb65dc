"""Logs read in pages and capped per run, on a live server with small limits (SQLite and Postgres).

The large-log fault test (``test_faults_logs.py``) runs a real ``bifrost serve``; this module checks
the details with limits small enough to reach quickly: the cursor and ``limit`` of the JSON API, the
byte budget of a page, the byte cap of a run, the SSE catch-up of the API and of the page, the
detail page's tail, and the SDK's ``executions.logs`` / ``iter_logs``.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import bifrost
from bifrost import executions
from bifrost.errors import NotFoundError, ValidationError
from tests.conftest import POSTGRES_URL, LiveServer, create_postgres_database, drop_postgres_database, make_settings
from tests.platform.conftest import World, browser_session, seed

PAGE_LINES = 20
PAGE_BYTES = 2048
MAX_LINES = 50
MAX_BYTES = 10 * 1024

WORKFLOWS = textwrap.dedent(
    '''
    import asyncio
    import os

    from bifrost import workflow


    @workflow(timeout_seconds=120)
    async def numbered(lines: int, width: int = 10, hold: str = "") -> int:
        """Print ``lines`` lines of exactly ``width`` characters (then wait for ``hold`` to exist)."""
        for index in range(lines):
            print(f"{index:04d} " + "x" * (width - 5))
        while hold and not os.path.exists(hold):
            await asyncio.sleep(0.02)
        return lines


    @workflow(timeout_seconds=120)
    async def bursts(first: int, then: int, gate: str) -> int:
        """Print ``first`` lines, wait for ``gate`` to exist, then print ``then`` more at once."""
        for index in range(first):
            print(f"{index:04d} xxxxx")
        while not os.path.exists(gate):
            await asyncio.sleep(0.02)
        for index in range(first, first + then):
            print(f"{index:04d} xxxxx")
        return first + then
    '''
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("log-paging")
    url = None
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("Postgres tests need BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
        url = create_postgres_database()
    workspace = tmp / "workspace"
    workspace.mkdir()
    (workspace / "logs.py").write_text(WORKFLOWS)
    settings = make_settings(
        tmp,
        url,
        workspace=workspace,
        log_page_lines=PAGE_LINES,
        log_page_bytes=PAGE_BYTES,
        log_max_lines=MAX_LINES,
        log_max_bytes=MAX_BYTES,
    )
    server = LiveServer(settings).start()
    try:
        yield World(server=server, **server.call(lambda: seed(server.platform)))
    finally:
        server.stop()
        if url:
            drop_postgres_database(url)


def run(world: World, **params: Any) -> str:
    with world.server.client(world.alice_key) as alice:
        response = alice.post("/api/workflows/numbered/execute", params={"wait": "true"}, json={"params": params})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Completed", response.json()
    return str(response.json()["execution_id"])


def messages(lines: list[dict[str, Any]]) -> list[str]:
    return [line["message"] for line in lines]


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """``(event, data)`` of a server-sent event stream, as they arrive."""
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line == "" and data:
            yield event, data
            event, data = "message", ""


def test_pages_follow_the_cursor_and_limit_is_clamped_or_refused(world: World) -> None:
    execution_id = run(world, lines=45)
    url = f"/api/executions/{execution_id}/logs"
    with world.server.client(world.alice_key) as alice:
        first = alice.get(url)
        assert first.status_code == 200
        assert [line["seq"] for line in first.json()] == list(range(PAGE_LINES))
        assert first.headers["x-next-after"] == "19"
        assert first.headers["link"] == f'<{url}?after=19>; rel="next"'
        second = alice.get(url, params={"after": 19})
        assert [line["seq"] for line in second.json()] == list(range(20, 40))
        last = alice.get(url, params={"after": 39})
        assert messages(last.json()) == [f"{i:04d} xxxxx" for i in range(40, 45)]
        assert "x-next-after" not in last.headers and "link" not in last.headers  # exhausted

        small = alice.get(url, params={"after": 9, "limit": 7})
        assert [line["seq"] for line in small.json()] == list(range(10, 17))
        assert small.headers["x-next-after"] == "16"
        assert small.headers["link"] == f'<{url}?after=16&limit=7>; rel="next"'
        exact = alice.get(url, params={"after": 39, "limit": 5})
        assert len(exact.json()) == 5 and "x-next-after" not in exact.headers  # nothing after: no cursor

        clamped = alice.get(url, params={"limit": 10_000})
        assert len(clamped.json()) == PAGE_LINES and clamped.headers["x-next-after"] == "19"

        zero = alice.get(url, params={"limit": 0})
        assert zero.status_code == 422 and "limit" in zero.text
        assert alice.get(url, params={"limit": "lots"}).status_code == 400
        assert alice.get(url, params={"after": 10**30}).status_code in (400, 422)
        assert alice.get(url, params={"after": -2}).status_code == 422
    with world.server.client(world.bob_key) as bob:  # another organization's run stays invisible
        assert bob.get(url).status_code == 404


def test_a_page_stops_at_its_byte_budget_but_holds_at_least_one_line(world: World) -> None:
    wide = run(world, lines=6, width=1000)
    huge = run(world, lines=2, width=3000)
    with world.server.client(world.alice_key) as alice:
        pages, after = [], -1
        while after is not None:
            response = alice.get(f"/api/executions/{wide}/logs", params={"after": after})
            pages.append([line["seq"] for line in response.json()])
            following = response.headers.get("x-next-after")
            after = int(following) if following else None
        assert pages == [[0, 1], [2, 3], [4, 5]]  # 2,000 bytes fit in 2,048; a third line would not
        first = alice.get(f"/api/executions/{huge}/logs")
        assert len(first.json()) == 1 and first.headers["x-next-after"] == "0"
        assert len(first.json()[0]["message"]) == 3000


def test_a_run_past_the_byte_cap_keeps_what_fits_and_counts_the_rest(world: World) -> None:
    execution_id = run(world, lines=15, width=1000)
    with world.server.client(world.alice_key) as alice:
        lines = alice.get(f"/api/executions/{execution_id}/logs", params={"limit": 20}).json()
        # Paged by bytes: read them all.
        while len(lines) < 12:
            more = alice.get(f"/api/executions/{execution_id}/logs", params={"after": lines[-1]["seq"]}).json()
            assert more, lines
            lines += more
    assert [line["seq"] for line in lines] == list(range(12))
    assert messages(lines[:10]) == [f"{i:04d} " + "x" * 995 for i in range(10)]  # an 11th would pass 10 KiB
    assert lines[10]["logger"] == "bifrost.log_limit"
    assert lines[10]["message"] == (
        "Log limit reached (50 lines or 10 KiB per run): later lines are not stored, only counted."
    )
    assert (lines[11]["logger"], lines[11]["level"]) == ("bifrost.log_dropped", "WARNING")
    assert lines[11]["message"].startswith("5 log lines dropped after the log limit")


def test_the_api_stream_catches_up_page_by_page(world: World) -> None:
    execution_id = run(world, lines=MAX_LINES + 3)
    with world.server.client(world.alice_key) as alice:
        with alice.stream("GET", f"/api/executions/{execution_id}/stream") as response:
            assert response.status_code == 200
            events = list(sse_events(response))
    logs = [json.loads(data) for event, data in events if event == "log"]
    # 50 lines, the limit marker and the count line: three pages of the catch-up, in order, once each.
    assert [line["seq"] for line in logs] == list(range(MAX_LINES + 2))
    assert logs[-1]["message"].startswith("3 log lines dropped")
    assert events[-1] == ("status", json.dumps({"status": "Completed", "done": True}))


def test_a_viewer_joining_a_running_execution_gets_every_line_then_the_end(world: World, tmp_path: Path) -> None:
    hold = tmp_path / "release"
    with world.server.client(world.alice_key) as alice:
        submitted = alice.post("/api/workflows/numbered/execute", json={"params": {"lines": 45, "hold": str(hold)}})
        execution_id = submitted.json()["execution_id"]
        deadline = time.monotonic() + 30
        # Join once a first page is stored (the rest stored or still buffered): the catch-up reads both.
        while len(alice.get(f"/api/executions/{execution_id}/logs").json()) < PAGE_LINES:
            assert time.monotonic() < deadline, "the run never printed"
            time.sleep(0.05)
        seen: list[int] = []
        with alice.stream("GET", f"/api/executions/{execution_id}/stream") as response:
            for event, data in sse_events(response):
                if event == "log":
                    seen.append(json.loads(data)["seq"])
                elif event == "status" and not json.loads(data).get("done"):
                    hold.touch()  # caught up: let it end
                elif event == "status":
                    assert json.loads(data)["status"] == "Completed"
                    break
    assert seen == list(range(45))


def test_the_page_shows_the_tail_and_its_live_stream_catches_up(world: World) -> None:
    wide = run(world, lines=6, width=1000)
    with browser_session(world) as page:
        detail = page.get(f"/executions/{wide}")
        assert detail.status_code == 200
        body = detail.text
        # The last lines that fit in a page's byte budget, and how many came before.
        assert "0004 xxx" in body and "0005 xxx" in body and "0003 xxx" not in body
        assert 'id="hidden-lines">4 earlier lines are not shown here' in body

        with page.stream("GET", f"/executions/{wide}/live", params={"after": -1}) as response:
            assert response.status_code == 200
            logs = []
            for event, data in sse_events(response):
                if event == "log":
                    logs.append(data)
                if event == "done":
                    break
        assert [f"{i:04d} xxx" in html for i, html in enumerate(logs)] == [True] * 6
        assert page.get(f"/executions/{wide}/live", params={"after": 10**30}).status_code in (400, 422)


async def test_the_sdk_reads_every_page(world: World) -> None:
    execution_id = run(world, lines=45)
    bifrost.configure(world.server.url, world.alice_key)
    try:
        everything = await executions.logs(execution_id)
        assert [line.seq for line in everything] == list(range(45))  # three pages, one list
        assert everything[44].message == "0044 xxxxx" and everything[0].logger == "stdout"
        assert [line.seq for line in await executions.logs(execution_id, limit=25)] == list(range(25))
        assert [line.seq for line in await executions.logs(execution_id, after=39)] == list(range(40, 45))
        assert [line.seq async for line in executions.iter_logs(execution_id, after=10)] == list(range(11, 45))
        with pytest.raises(ValidationError):
            await executions.logs(execution_id, limit=0)
        with pytest.raises(NotFoundError):
            await executions.logs("no-such-execution")
    finally:
        bifrost.configure(None)


async def test_the_notebook_client_reads_every_page(world: World) -> None:
    from notebooks.client import PlatformClient

    execution_id = run(world, lines=45)
    lines = await PlatformClient(url=world.server.url, api_key=world.alice_key).execution_logs(execution_id)
    assert [line["seq"] for line in lines] == list(range(45))


def test_a_notebook_runs_cap_survives_a_lost_tally(world: World) -> None:
    """The per-process tally of a notebook run is rebuilt from the database (restart, another server)."""
    from app.services.executions.log_limits import external_tallies

    schema = {"type": "object", "properties": {}}
    with world.server.client(world.admin_key) as admin:
        started = admin.post("/api/notebook-runs", json={"name": "tally", "params": {}, "params_schema": schema})
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        url = f"/api/notebook-runs/{execution_id}/logs"

        def post(count: int, start: int) -> dict[str, Any]:
            lines = [{"message": f"{start + i:04d} xxxxx"} for i in range(count)]
            response = admin.post(url, json={"lines": lines})
            assert response.status_code == 200, response.text
            return dict(response.json())

        assert post(30, 0) == {"stored": 30, "last_seq": 29}
        external_tallies.forget(execution_id)  # rebuilt from 30 stored lines
        assert post(30, 30) == {"stored": 22, "last_seq": 51}  # 20 lines, the marker, the count line
        external_tallies.forget(execution_id)  # rebuilt from the count line
        assert post(5, 60) == {"stored": 0, "last_seq": None}
        lines = admin.get(f"/api/executions/{execution_id}/logs", params={"after": 45}).json()
    assert messages(lines[:4]) == [f"{i:04d} xxxxx" for i in range(46, 50)]
    assert lines[4]["logger"] == "bifrost.log_limit" and lines[5]["logger"] == "bifrost.log_dropped"
    assert lines[5]["message"].startswith("15 log lines dropped")  # 10, then 5 more: counted in place
    assert len(lines) == 6


@pytest.mark.parametrize("viewer", ["api", "page"])
def test_a_viewer_whose_live_queue_overflows_still_gets_every_line(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, viewer: str
) -> None:
    from app.engine import events

    monkeypatch.setattr(events, "_QUEUE_LIMIT", 2)  # a viewer lagging behind a fast run loses live events
    gate = tmp_path / "gate"
    with world.server.client(world.admin_key) as admin:
        submitted = admin.post(
            "/api/workflows/bursts/execute", json={"params": {"first": 1, "then": 40, "gate": str(gate)}}
        )
        execution_id = submitted.json()["execution_id"]
    session = browser_session(world) if viewer == "page" else world.server.client(world.admin_key)
    url = f"/executions/{execution_id}/live" if viewer == "page" else f"/api/executions/{execution_id}/stream"
    seen: list[int] = []
    with session as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        for event, data in sse_events(response):
            if event == "log":
                found = re.search(r"(\d{4}) xxxxx", data)
                assert found, data
                seen.append(int(found.group(1)))
                gate.touch()  # the first line is in: now the burst
            elif event == "done" or (event == "status" and '"done": true' in data):
                break
    assert seen == list(range(41))
