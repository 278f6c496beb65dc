"""Two real ``bifrost serve`` processes on one Postgres, as behind a load balancer (issue 18, part 2).

Live events published on server A reach an SSE viewer on server B (the API stream and the run page over
Postgres LISTEN/NOTIFY, the API stream over Redis), and so do a notebook run's lines reported to A; a chat
turn running on A is followed from B; a config write on A is seen by B's cached reads; a sign-in guesser
alternating A and B meets one budget; a session cookie of A works on B; a schedule fires once with two
schedulers, and one written on the follower reaches the leader at once (not at its poll); a restart of B leaves A's running chat turn alone. Runs go through the Postgres queue to one
``bifrost worker`` node (part 1), so events, caches and limits use Postgres by default.
"""

from __future__ import annotations

import contextlib
import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database
from tests.platform.faults_support import FAULT_WORKFLOWS, Serve, wait_until
from tests.scale.cluster_support import Node

# `narrate` waits for the viewer (gate file), logs lines (one longer than a NOTIFY payload), then waits
# again until the test has seen those lines live, so lines that arrived only with the end would hang it.
EVENT_WORKFLOWS = textwrap.dedent(
    """
    import asyncio
    import logging
    import os

    from bifrost import workflow

    log = logging.getLogger(__name__)


    async def _wait_for(path: str) -> None:
        while not os.path.exists(path):
            await asyncio.sleep(0.02)


    @workflow(timeout_seconds=60)
    async def narrate(first_gate: str, second_gate: str) -> int:
        await _wait_for(first_gate)
        for n in range(10):
            log.info("line %d", n)
        log.info("long %s", "x" * 20_000)
        await _wait_for(second_gate)
        return 11


    @workflow
    async def tick() -> str:
        return "tick"


    @workflow(is_tool=True)
    async def wait_for_gate(path: str) -> str:
        # a chat tool that returns once the file exists
        await _wait_for(path)
        return "opened"
    """
)
SECRET_KEY = "t6VdQ3X3mJ8mW6ZL0yqfY3QkZp8wJbq2m0m5hF4e9tA="  # shared: sessions work on either server
ADMIN = {"email": "admin@example.com", "password": "fault-injection"}
LOGIN_LIMIT = 4


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


class Pair:
    """Server A and server B sharing one database, one workspace and one secret key (and a worker node).

    With ``queue=postgres`` (the supported topology, docs/deploy.md) a ``bifrost worker`` node runs the runs;
    otherwise each server runs its own (enough for the Redis variant, which restarts nothing).
    """

    def __init__(self, root: Path, database_url: str, **settings: str) -> None:
        workspace = root / "workspace"
        workspace.mkdir(parents=True)
        (workspace / "faults.py").write_text(FAULT_WORKFLOWS)
        (workspace / "cluster_events.py").write_text(EVENT_WORKFLOWS)
        shared = {
            "workspace": str(workspace),
            "secret_key": SECRET_KEY,
            "watch_workspace": "false",
            "login_rate_limit_per_minute": str(LOGIN_LIMIT),
            "scheduler_poll_seconds": "0.5",
            **settings,
        }
        self.a = Serve(root / "server-a", database_url, workers=1, **shared)
        self.b = Serve(root / "server-b", database_url, workers=1, **shared)
        self.node = Node(root, "node-1", {**self.a.env, "BIFROST_PUBLIC_URL": self.a.url}, workers=3)
        self.queue = shared.get("queue") == "postgres"
        self.gates = root / "gates"
        self.gates.mkdir()

    def start(self) -> Pair:
        self.a.cli("init")
        # The database is migrated now: both servers (and the node) boot side by side instead of in turn;
        # start-up takes turns where it must (the workspace sync and the queue schema under advisory locks).
        self.a.launch()
        self.b.launch()
        if self.queue:
            self.node.start()
        self.a.wait_ready()
        self.b.wait_ready()
        if self.queue:
            self.node.wait_ready()
        self.a.key = self.b.key = self.a.admin_key()  # the key lives in the shared database
        return self

    def stop(self) -> None:
        if self.queue:
            self.node.stop()
        for server in (self.a, self.b):
            if server.process is not None and server.process.poll() is None:
                server.terminate()
                with contextlib.suppress(Exception):
                    server.wait_exit(60)


@contextlib.contextmanager
def _pair(tmp_path: Path, **settings: str) -> Iterator[Pair]:
    if not POSTGRES_URL:
        pytest.skip("several servers share a Postgres database: set BIFROST_TEST_POSTGRES_URL")
    url = create_postgres_database()
    pair = Pair(tmp_path, url, **settings)
    try:
        yield pair.start()
    finally:
        pair.stop()
        drop_postgres_database(url)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    # The topology of docs/deploy.md: the queue on Postgres, so events and limits go through Postgres by default.
    # The leader re-reads schedules only every 600 s: it can learn of a schedule written elsewhere only from the
    # bus, so the schedule tests show that path (and not the poll) and no second pair is started for them.
    settings = {
        "queue": "postgres",
        "node_heartbeat_seconds": "0.5",
        "node_lost_seconds": "3",
        "scheduler_poll_seconds": "600",
    }
    with _pair(tmp_path_factory.mktemp("cluster-events"), scheduler_enabled="true", **settings) as pair:
        yield pair


def _sse_raw(response: httpx.Response) -> Iterator[tuple[str, str]]:
    kind, data = "", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and kind:
            yield kind, "\n".join(data)
            kind, data = "", []


def _sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind, data in _sse_raw(response):
        yield kind, json.loads(data)


def _watch_run_of_a_on_b(pair: Pair, name: str, *, cut: bool) -> None:
    first, second = pair.gates / f"{name}-1", pair.gates / f"{name}-2"
    with pair.a.client() as a:
        started = a.post(
            "/api/workflows/narrate/execute", json={"params": {"first_gate": str(first), "second_gate": str(second)}}
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
    headers = {"Authorization": f"Bearer {pair.b.key}"}
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{pair.b.url}/api/executions/{execution_id}/stream", headers=headers, timeout=60) as sse:
        assert sse.status_code == 200
        events = _sse(sse)
        kind, event = next(events)
        assert kind == "status" and not event.get("done")
        first.touch()  # B is subscribed: the run on A may log now
        for kind, event in events:
            if kind == "status":  # Pending -> Running as the node takes the run
                assert not event.get("done"), event
                continue
            seen.append(event)
            if len(seen) == 11:
                break
        second.touch()  # the lines came live through the bus: let the run end
        kind, event = next(events)
        assert (kind, event["status"], event["done"]) == ("status", "Completed", True)
    assert [e["message"] for e in seen[:10]] == [f"line {n}" for n in range(10)]
    assert [e["seq"] for e in seen] == list(range(11))
    long_line = seen[10]
    if cut:  # over NOTIFY's 8,000 bytes: cut live, with a marker
        assert long_line["truncated"] is True and "20005 characters in all" in long_line["message"]
    else:  # Redis carries it whole
        assert len(long_line["message"]) == 20_005 and "truncated" not in long_line
    with pair.b.client() as b:  # the stored line is whole, read on either server
        stored = b.get(f"/api/executions/{execution_id}/logs").json()
    assert len(stored[10]["message"]) == 20_005


def test_a_run_on_server_a_streams_live_to_a_viewer_on_server_b_over_postgres(pair: Pair) -> None:
    _watch_run_of_a_on_b(pair, "postgres", cut=True)


def test_a_notebook_run_reported_to_server_a_streams_to_a_viewer_on_server_b(pair: Pair) -> None:
    schema = {"type": "object", "properties": {}}
    with pair.a.client() as a:
        run = a.post("/api/notebook-runs", json={"name": "trial", "params": {}, "params_schema": schema})
        assert run.status_code == 201, run.text
        execution_id = run.json()["execution_id"]
        url = f"{pair.b.url}/api/executions/{execution_id}/stream"
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {pair.b.key}"}, timeout=60) as sse:
            assert sse.status_code == 200
            events = _sse(sse)
            assert next(events)[1]["status"] == "Running"
            lines = [{"level": "INFO", "message": f"cell {n}"} for n in range(3)]
            assert a.post(f"/api/notebook-runs/{execution_id}/logs", json={"lines": lines}).status_code == 200
            seen = [next(events) for _ in range(3)]  # live, before the run ends
            finished = a.post(f"/api/notebook-runs/{execution_id}/finish", json={"status": "Completed"})
            assert finished.status_code == 200, finished.text
            kind, end = next(events)
    assert [(k, e["message"]) for k, e in seen] == [("log", f"cell {n}") for n in range(3)]
    assert (kind, end["status"], end["done"]) == ("status", "Completed", True)


def test_a_config_write_on_a_is_seen_by_cached_reads_on_b(pair: Pair) -> None:
    with pair.a.client() as a, pair.b.client() as b:
        assert a.put("/api/config/cluster_key", json={"value": "first"}).status_code in (200, 201)
        assert b.get("/api/config/cluster_key").json()["value"] == "first"
        assert b.get("/api/config/cluster_key").json()["value"] == "first"  # now from B's cache (5 s)
        assert a.put("/api/config/cluster_key", json={"value": "second"}).status_code in (200, 201)
        # The invalidation travels by NOTIFY at A's commit; B may read before its listener saw it only by
        # microseconds, so allow a few quick reads, far below the 5 s the cache would otherwise serve.
        values = []
        for _ in range(25):
            values.append(b.get("/api/config/cluster_key").json()["value"])
            if values[-1] == "second":
                break
            time.sleep(0.02)
        assert values[-1] == "second", values


def _from(address: str) -> httpx.HTTPTransport:
    """Connections from another loopback address: a client address of its own for the limits."""
    return httpx.HTTPTransport(local_address=address)


def test_a_password_guesser_alternating_servers_meets_one_budget(pair: Pair) -> None:
    if time.time() % 60 > 50:  # the count is per wall-clock minute: start in a fresh one
        time.sleep(61 - time.time() % 60)
    statuses = []
    with httpx.Client(transport=_from("127.0.0.3"), timeout=30) as guesser:
        for attempt in range(LOGIN_LIMIT + 2):
            server = pair.a if attempt % 2 == 0 else pair.b
            response = guesser.post(f"{server.url}/api/auth/login", json={**ADMIN, "password": "wrong"})
            statuses.append(response.status_code)
    assert statuses == [401] * LOGIN_LIMIT + [429, 429], statuses
    assert int(response.headers["Retry-After"]) >= 1


def test_a_session_cookie_of_server_a_works_on_server_b(pair: Pair) -> None:
    with httpx.Client(base_url=pair.a.url, transport=_from("127.0.0.4"), timeout=30) as a:
        login = a.post("/api/auth/login", json=ADMIN)
        assert login.status_code == 200, login.text
        cookies = dict(a.cookies)
    me = httpx.get(f"{pair.b.url}/api/auth/me", cookies=cookies, timeout=30)
    assert me.status_code == 200 and me.json()["email"] == ADMIN["email"]


def test_the_run_page_on_server_b_follows_a_run_on_server_a_live(pair: Pair) -> None:
    first, second = pair.gates / "page-1", pair.gates / "page-2"
    with httpx.Client(base_url=pair.a.url, transport=_from("127.0.0.5"), timeout=30) as browser:
        assert browser.post("/api/auth/login", json=ADMIN).status_code == 200  # signed in on A
        cookies = dict(browser.cookies)
    with pair.a.client() as a:
        started = a.post(
            "/api/workflows/narrate/execute", json={"params": {"first_gate": str(first), "second_gate": str(second)}}
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
    logs: list[str] = []
    with httpx.stream("GET", f"{pair.b.url}/executions/{execution_id}/live", cookies=cookies, timeout=60) as page:
        assert page.status_code == 200
        first.touch()  # B subscribed before it answered: the run may log now
        events = _sse_raw(page)
        for kind, html in events:
            if kind == "log":
                logs.append(html)
                if len(logs) == 11:
                    break
        second.touch()
        kinds = []
        for kind, _ in events:
            kinds.append(kind)
            if kind == "done":  # the browser closes here; the server would hold the stream for its close grace
                break
    assert "line 0" in logs[0] and "line 9" in logs[9] and "cut in the live view" in logs[10]
    assert kinds[-1] == "done" and "result" in kinds


def test_a_schedule_fires_once_with_two_servers(pair: Pair) -> None:
    with pair.a.client() as a, pair.b.client() as b:
        leaders = [c.get("/api/schedules/status").json()["leader"] for c in (a, b)]
        assert sorted(leaders) == [False, True], leaders  # one lock holder on the shared database
        created = b.post("/api/schedules", json={"workflow": "tick", "cron": "*/2 * * * * *"})  # every 2 s
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]

        def fired() -> list[dict[str, Any]]:
            return [r for r in a.get(f"/api/schedules/{schedule_id}/runs").json() if r["execution_id"]]

        wait_until(lambda: len(fired()) >= 3, 30, "three firings")
        assert b.patch(f"/api/schedules/{schedule_id}", json={"enabled": False}).status_code == 200
        time.sleep(3)  # the leader drops the job at once (the bus); a firing under way is recorded
        runs = fired()
        ticks = a.get("/api/executions", params={"workflow_name": "tick", "limit": 500}).json()
    slots = [r["scheduled_for"] for r in runs]
    assert len(slots) == len(set(slots)) >= 3  # one record per slot
    assert sorted(e["execution_id"] for e in ticks) == sorted(r["execution_id"] for r in runs), "a slot fired twice"
    assert {e["trigger"] for e in ticks} == {"schedule"}


def test_a_schedule_written_on_the_follower_reaches_the_leader_at_once(pair: Pair) -> None:
    # The leader re-reads schedules every 600 s here (the module's pair): it can only learn of them from the bus.
    # It runs after test_a_schedule_fires_once_with_two_servers, which counts every `tick` run in the database.
    with pair.a.client() as a, pair.b.client() as b:
        statuses = {server: c.get("/api/schedules/status").json() for server, c in (("a", a), ("b", b))}
        leader, follower = (a, b) if statuses["a"]["leader"] else (b, a)
        assert sorted(s["leader"] for s in statuses.values()) == [False, True], statuses
        jobs_before = leader.get("/api/schedules/status").json()["jobs"]
        created = follower.post("/api/schedules", json={"workflow": "tick", "cron": "*/2 * * * * *"})
        assert created.status_code == 201, created.text
        schedule_id = created.json()["id"]

        def leader_jobs() -> int:
            return int(leader.get("/api/schedules/status").json()["jobs"])

        wait_until(lambda: leader_jobs() == jobs_before + 1, 30, "the leader to take the new schedule")

        def fired() -> bool:
            runs = leader.get(f"/api/schedules/{schedule_id}/runs").json()
            return any(run["execution_id"] for run in runs)

        wait_until(fired, 30, "the schedule written on the follower to fire")
        assert follower.patch(f"/api/schedules/{schedule_id}", json={"enabled": False}).status_code == 200
        wait_until(lambda: leader_jobs() == jobs_before, 30, "the leader to drop the disabled schedule")
        assert follower.get("/api/schedules/status").json() == {"running": True, "leader": False, "jobs": 0}


def test_a_chat_turn_running_on_a_streams_to_a_viewer_reconnecting_to_b(pair: Pair) -> None:
    gate = pair.gates / "chat"
    with pair.a.client() as a:
        assert a.put("/api/chat/tools/wait_for_gate", json={"needs_approval": False}).status_code == 200
        conversation = a.post("/api/chat/conversations", json={})
        assert conversation.status_code == 201, conversation.text
        conversation_id = conversation.json()["id"]
        sent = a.post(
            f"/api/chat/conversations/{conversation_id}/messages",
            json={"content": f'/run wait_for_gate path="{gate}"'},
        )
        assert sent.status_code in (200, 201, 202), sent.text
        turn_id = sent.json()["turn_id"]
    with pair.b.client() as b:  # B knows the reply is being written on A: one at a time holds across servers
        view = b.get(f"/api/chat/conversations/{conversation_id}").json()
        assert view["active_turn"] == turn_id, view
        second = b.post(f"/api/chat/conversations/{conversation_id}/messages", json={"content": "/run tick"})
        assert second.status_code == 409, second.text
    # A rolling restart of B while A writes the reply: B's start-up recovery must leave A's turn alone.
    pair.b.terminate()
    pair.b.wait_exit(60)
    pair.b.start()
    events: list[dict[str, Any]] = []
    url = f"{pair.b.url}/api/chat/turns/{turn_id}/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {pair.b.key}"}, timeout=60) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        while not any(e["type"] == "tool" for e in events):  # the call is running on A, the tool waits
            events.append(json.loads(next(lines)))
        gate.touch()
        for line in lines:
            events.append(json.loads(line))
            if events[-1]["type"] == "done":
                break
    assert [e["seq"] for e in events] == list(range(len(events)))  # every event once, in order
    assert events[-1]["type"] == "done"
    assert any(e["type"] == "tool_update" and "opened" in json.dumps(e) for e in events), events
    with pair.b.client() as b:
        messages = b.get(f"/api/chat/conversations/{conversation_id}").json()["messages"]
    assert not [m for m in messages if m["role"] == "notice"], messages  # nothing "interrupted" by B's restart


def test_a_run_on_server_a_streams_live_to_server_b_over_redis(tmp_path: Path) -> None:
    if not _redis_up():
        pytest.skip("the Redis bus needs a Redis server at 127.0.0.1:6379")
    # Each server runs its own runs here (queue=local); auto picks Redis for events when a URL is set.
    with _pair(tmp_path, redis_url="redis://127.0.0.1:6379/0") as redis_pair:
        _watch_run_of_a_on_b(redis_pair, "redis", cut=False)
