"""Issue 19, the run page: the live stream never shows a log line under "Pending", a finished run
without logs says "No log lines", and every time on the page carries its zone."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.conftest import World
from tests.platform.pages_support import PageClient, alice, execution_id, start_pages_world, wait_done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_pages_world(tmp_path_factory.mktemp("run-page"))
    try:
        yield w
    finally:
        w.server.stop()


def _events(client: PageClient, run: str) -> list[tuple[str, str]]:
    """(event, data) of the live stream until ``done``."""
    events: list[tuple[str, str]] = []
    with client.http.stream("GET", f"/executions/{run}/live") as stream:
        event, data = "", []
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and event:
                events.append((event, "\n".join(data)))
                if event == "done":
                    break
                event, data = "", []
    return events


def _status(data: str) -> str:
    found = re.search(r'id="exec-status-text">([^<]*)<', data)
    return found.group(1) if found else ""


def test_no_log_line_is_streamed_before_running(world: World) -> None:
    """Watchers that connect while the run is still pending, five times: Running always comes first."""
    with alice(world) as client:
        for _ in range(5):
            run = execution_id(client.post("/workflows/slow_logger/run", {"steps": "2", "delay": "0.05"}))
            events = _events(client, run)
            first_log = next(i for i, (event, _) in enumerate(events) if event == "log")
            statuses_before = [_status(data) for event, data in events[:first_log] if event == "status"]
            shown = "Running" in statuses_before
            # A watcher that connected once the run was already Running got that from the page itself.
            assert shown or not statuses_before, events[: first_log + 1]
            assert all(_status(d) != "Pending" for e, d in events[first_log:] if e == "status"), events
            assert [e for e, _ in events[-3:]] == ["status", "result", "done"]


def test_a_pending_run_is_announced_running_before_its_first_line(world: World) -> None:
    """The page rendered while Pending: the stream's first event for it must not be a log line."""
    with alice(world) as client:
        for _ in range(5):
            run = execution_id(client.post("/workflows/slow_logger/run", {"steps": "1", "delay": "0"}))
            page = client.get(f"/executions/{run}").text
            events = _events(client, run)
            if 'id="exec-status-text">Pending<' not in page:
                continue  # already running when the page was drawn: nothing to announce
            kinds = [e for e, _ in events]
            if "log" in kinds:
                first_log = kinds.index("log")
                assert "Running" in [_status(d) for e, d in events[:first_log] if e == "status"], events


def test_a_line_published_before_running_is_preceded_by_running(world: World) -> None:
    """The dispatcher's order, forced: both workers busy, a third run queued (Pending) with a watcher,
    then a log line published for it before any Running status (what a fast worker can cause)."""
    platform = world.server.platform
    with alice(world) as client:
        busy = [execution_id(client.post("/workflows/sleeper/run", {"seconds": "30"})) for _ in range(2)]
        queued = execution_id(client.post("/workflows/noop/run", {}))
        try:
            assert 'id="exec-status-text">Pending<' in client.get(f"/executions/{queued}").text
            seen: list[tuple[str, str]] = []

            def watch() -> None:
                with client.http.stream("GET", f"/executions/{queued}/live") as stream:
                    event, data = "", []
                    for line in stream.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            data.append(line[6:])
                        elif line == "" and event:
                            seen.append((event, "\n".join(data)))
                            if event == "log":
                                return
                            event, data = "", []

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            deadline = time.monotonic() + 10
            while queued not in platform.hub._subscribers:  # the watcher has subscribed
                assert time.monotonic() < deadline
                time.sleep(0.02)
            line: dict[str, Any] = {"type": "log", "seq": 0, "level": "INFO", "logger": "t", "message": "early"}
            line["timestamp"] = "2026-01-01T00:00:00+00:00"

            async def publish() -> None:
                platform.hub.publish(queued, line)

            world.server.call(publish)
            watcher.join(10)
            assert [e for e, _ in seen] == ["status", "log"], seen
            assert _status(seen[0][1]) == "Running" and "early" in seen[1][1]
        finally:
            for run in [*busy, queued]:
                client.post(f"/executions/{run}/cancel")


def test_finished_run_without_logs_says_no_log_lines(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/noop/run", {}))
        events = _events(client, run)  # the stream of a run that ends without a line
        wait_done(world, world.alice_key, run)
        page = client.get(f"/executions/{run}").text
    assert '<li class="empty" id="logs-empty">No log lines.</li>' in page and "No log lines yet" not in page
    final_status = [data for event, data in events if event == "status"][-1]
    assert 'id="logs-empty" hx-swap-oob="true">No log lines.</li>' in final_status


def test_every_time_on_the_run_page_has_its_zone(world: World) -> None:
    with alice(world) as client:
        run = execution_id(client.post("/workflows/add/run", {"a": "1"}))
        wait_done(world, world.alice_key, run)
        page = client.get(f"/executions/{run}").text
        listing = client.get("/executions").text
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    facts = re.search(r'<table class="kv" id="execution-facts">.*?</table>', page, re.S)
    assert facts
    for row in ("Created", "Started", "Completed"):
        cell = re.search(rf"<th scope=\"row\">{row}</th><td>(.*?)</td>", facts.group(0), re.S)
        assert cell and re.search(stamp, cell.group(1)), (row, cell and cell.group(1))
    assert re.search(stamp, listing)
