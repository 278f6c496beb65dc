"""The event hub on its own: in-process, and two hubs (two servers) on Postgres LISTEN/NOTIFY and on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.engine.event_backends import POSTGRES_MAX_PAYLOAD, events_mode, libpq_dsn, redis_backend
from app.engine.events import EventHub
from app.engine.recent_logs import RecentLogs
from tests.conftest import POSTGRES_URL, make_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def _next(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), 10)


async def test_local_hub_delivers_to_each_subscriber_and_not_after_unsubscribe() -> None:
    hub = EventHub()
    first, second = hub.subscribe("run-1"), hub.subscribe("run-1")
    other = hub.subscribe("run-2")
    hub.publish("run-1", {"type": "status", "status": "Running"})
    assert first.get_nowait() == second.get_nowait() == {"type": "status", "status": "Running"}
    assert other.empty()
    hub.unsubscribe("run-1", first)
    hub.publish("run-1", {"type": "status", "status": "Success", "done": True})
    assert first.empty() and second.get_nowait()["done"] is True
    assert not hub.distributed


def test_events_mode_default_is_local_and_follows_the_settings(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    assert events_mode(settings) == "local"  # SQLite, one server: the in-process hub
    assert events_mode(settings.model_copy(update={"redis_url": REDIS_URL})) == "redis"
    pg = settings.model_copy(update={"database_url": "postgresql+asyncpg://u:p@db:5432/x", "queue": "postgres"})
    assert events_mode(pg) == "postgres"
    assert events_mode(pg.model_copy(update={"events": "local"})) == "local"
    assert libpq_dsn("postgresql+asyncpg://u:p@db:5432/x") == "postgresql://u:p@db:5432/x"


def test_a_server_decodes_only_the_events_it_has_subscribers_for() -> None:
    hub = EventHub()
    queue = hub.subscribe("watched")
    payload = "othernode 1\nwatched\t" + '{"type": "log", "seq": 0}' + "\nunwatched\t{not json: never decoded}"
    assert hub.receive(payload.encode()) == 1
    assert queue.get_nowait() == {"type": "log", "seq": 0}
    # Its own messages coming back from the bus are skipped (they were delivered here at publish).
    assert hub.receive(f"{hub.node} 2\nwatched\t{{}}") == 0


def test_a_log_line_too_large_for_notify_is_cut_with_a_marker_and_other_events_still_fit() -> None:
    hub = EventHub(backend=object(), max_payload=POSTGRES_MAX_PAYLOAD)  # type: ignore[arg-type]
    hub.publish("run", {"type": "log", "seq": 3, "message": "é" * 50_000})
    hub.publish("run", {"type": "status", "status": "Success", "done": True})
    first = hub._take_payload()
    assert first is not None and len(first) <= POSTGRES_MAX_PAYLOAD
    receiver = EventHub()
    queue = receiver.subscribe("run")
    receiver.receive(first)
    line = queue.get_nowait()
    assert line["seq"] == 3 and line["truncated"] is True
    assert "50000 characters in all" in line["message"] and line["message"].startswith("é" * 1000)
    second = hub._take_payload()
    assert second is not None
    receiver.receive(second)
    assert queue.get_nowait()["done"] is True


@pytest.fixture
async def postgres_hubs() -> AsyncIterator[tuple[EventHub, EventHub]]:
    if not POSTGRES_URL:
        pytest.skip("the Postgres bus needs BIFROST_TEST_POSTGRES_URL (set by .ci/run)")
    from app.engine.pg_channels import PostgresBackend

    dsn = libpq_dsn(POSTGRES_URL)
    hubs = (
        EventHub(PostgresBackend(dsn), max_payload=POSTGRES_MAX_PAYLOAD, channel="bifrost_test_hub"),
        EventHub(PostgresBackend(dsn), max_payload=POSTGRES_MAX_PAYLOAD, channel="bifrost_test_hub"),
    )
    for hub in hubs:
        await hub.start()
    yield hubs
    for hub in hubs:
        await hub.stop()


@pytest.fixture
async def redis_hubs() -> AsyncIterator[tuple[EventHub, EventHub]]:
    if not _redis_up():
        pytest.skip("the Redis bus needs a Redis server at 127.0.0.1:6379")
    hubs = (
        EventHub(redis_backend(REDIS_URL), max_payload=64 * 1024, channel="bifrost_test_hub"),
        EventHub(redis_backend(REDIS_URL), max_payload=64 * 1024, channel="bifrost_test_hub"),
    )
    for hub in hubs:
        await hub.start()
    yield hubs
    for hub in hubs:
        await hub.stop()


async def _cross_server(server_a: EventHub, server_b: EventHub) -> None:
    watcher = server_b.subscribe("run-x")
    dropped: list[dict[str, Any]] = []
    server_b.on_remote("#cache", dropped.append)
    local = server_a.subscribe("run-x")
    for seq in range(500):  # a burst: many events per bus message, in order
        server_a.publish("run-x", {"type": "log", "seq": seq, "message": f"line {seq}"})
    server_a.publish("run-x", {"type": "status", "status": "Success", "done": True})
    server_a.publish("#cache", {"cache": "config"})
    got = [await _next(watcher) for _ in range(501)]
    assert [e["seq"] for e in got[:500]] == list(range(500))
    assert got[-1]["done"] is True
    assert local.qsize() == 501  # delivered on A itself at once, once (its own bus messages are skipped)
    for _ in range(100):
        if dropped:
            break
        await asyncio.sleep(0.05)
    assert dropped == [{"cache": "config"}]
    # B publishes, A's subscriber gets it: the bus works both ways.
    server_b.publish("run-x", {"type": "status", "status": "Cancelled", "done": True})
    while (event := await _next(local))["type"] == "log" or event.get("status") != "Cancelled":
        pass


async def test_postgres_bus_carries_events_between_two_servers(postgres_hubs: tuple[EventHub, EventHub]) -> None:
    await _cross_server(*postgres_hubs)


async def test_postgres_bus_carries_a_long_log_line_cut_to_the_notify_limit(
    postgres_hubs: tuple[EventHub, EventHub],
) -> None:
    server_a, server_b = postgres_hubs
    watcher = server_b.subscribe("run-long")
    server_a.publish("run-long", {"type": "log", "seq": 0, "message": "x" * 100_000})
    server_a.publish("run-long", {"type": "log", "seq": 1, "message": "short"})
    first, second = await _next(watcher), await _next(watcher)
    assert first["truncated"] is True and "100000 characters in all" in first["message"]
    assert second == {"type": "log", "seq": 1, "message": "short"}


async def test_redis_bus_carries_events_between_two_servers(redis_hubs: tuple[EventHub, EventHub]) -> None:
    await _cross_server(*redis_hubs)


async def _chat_turn_on_a_followed_on_b(server_a: EventHub, server_b: EventHub) -> None:
    from app.services.chat.turn_relay import TurnRelay
    from app.services.chat.turn_stream import Turn

    turns_a: dict[str, Turn] = {}
    relay_a, relay_b = TurnRelay(server_a, turns_a), TurnRelay(server_b, {})
    turn = Turn("turn-1", "conversation-1", "user-1")
    relay_a.share(turn)
    turns_a[turn.id] = turn
    turn.emit("segment", index=0)
    turn.emit("token", index=0, content="Hello")  # before anyone on B looks: replayed when B asks
    assert await relay_b.mirror("no-such-turn") is None  # nobody answers for it
    mirror = await relay_b.mirror("turn-1")
    assert mirror is not None and (mirror.user_id, mirror.conversation_id) == ("user-1", "conversation-1")
    seen = []

    async def follow() -> None:
        async for event in mirror.follow():
            seen.append(event)

    following = asyncio.create_task(follow())
    turn.emit("token", index=0, content=" world")  # live
    turn.finish()
    await asyncio.wait_for(following, 10)
    assert [e["type"] for e in seen] == ["segment", "token", "token", "done"]
    assert mirror.segment_texts() == {0: "Hello world"} and mirror.done


async def test_a_chat_turn_on_one_server_is_followed_from_another_over_postgres(
    postgres_hubs: tuple[EventHub, EventHub],
) -> None:
    await _chat_turn_on_a_followed_on_b(*postgres_hubs)


async def test_a_chat_turn_on_one_server_is_followed_from_another_over_redis(
    redis_hubs: tuple[EventHub, EventHub],
) -> None:
    await _chat_turn_on_a_followed_on_b(*redis_hubs)


async def test_postgres_bus_listens_again_after_its_connection_is_killed(
    postgres_hubs: tuple[EventHub, EventHub],
) -> None:
    import asyncpg

    server_a, server_b = postgres_hubs
    watcher = server_b.subscribe("run-after-restart")
    pid = server_b.backend._listener_conn.get_server_pid()  # type: ignore[union-attr]
    admin = await asyncpg.connect(libpq_dsn(POSTGRES_URL or ""))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)  # as a database restart would
    finally:
        await admin.close()
    for attempt in range(100):  # events sent while B was not listening are lost; later ones arrive
        server_a.publish("run-after-restart", {"type": "status", "status": "Running", "n": attempt})
        with contextlib.suppress(TimeoutError):
            event = await asyncio.wait_for(watcher.get(), 0.2)
            break
    else:
        pytest.fail("server B never listened again")
    assert event["status"] == "Running"
    assert server_b.backend._listener_conn.get_server_pid() != pid  # type: ignore[union-attr]


async def test_redis_bus_listens_again_after_its_connection_is_killed(redis_hubs: tuple[EventHub, EventHub]) -> None:
    from redis.asyncio import Redis

    server_a, server_b = redis_hubs
    watcher = server_b.subscribe("run-after-kill")
    admin = Redis.from_url(REDIS_URL)
    try:
        # Only B's subscription (other pub/sub clients of this Redis are left alone), as a Redis restart would.
        writer = server_b.backend._pub_sub.connection._writer  # type: ignore[union-attr]
        host, port = writer.get_extra_info("sockname")[:2]
        assert await admin.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
    finally:
        await admin.aclose()
    for attempt in range(100):  # events sent while B was not subscribed are lost; later ones arrive
        server_a.publish("run-after-kill", {"type": "status", "status": "Running", "n": attempt})
        with contextlib.suppress(TimeoutError):
            event = await asyncio.wait_for(watcher.get(), 0.2)
            break
    else:
        pytest.fail("server B never subscribed again")
    assert event["status"] == "Running"


async def test_a_reply_being_written_on_one_server_is_known_on_the_other(
    postgres_hubs: tuple[EventHub, EventHub],
) -> None:
    from app.services.chat.turn_relay import ActiveTurns, TurnRelay

    active_a, active_b = ActiveTurns(), ActiveTurns()
    TurnRelay(postgres_hubs[0], {}, active_a)
    TurnRelay(postgres_hubs[1], {}, active_b)
    active_a["conversation-1"] = "turn-1"  # a turn starts on A

    async def until(condition: Any) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.01)
        pytest.fail("the announcement never arrived")

    await until(lambda: "conversation-1" in active_b)
    assert active_b.get("conversation-1") == "turn-1" and set(active_b) == {"conversation-1"}
    assert dict(active_b) == {}  # none of B's own
    active_a.pop("conversation-1", None)  # the reply is over
    await until(lambda: "conversation-1" not in active_b)
    assert active_b.get("conversation-1") is None


def _log(seq: int, message: str = "") -> dict[str, Any]:
    return {
        "type": "log",
        "seq": seq,
        "timestamp": "2026-12-06T21:00:00+00:00",
        "level": "INFO",
        "logger": "w",
        "message": message or f"line {seq}",
    }


def _bus_message(hub: EventHub, *events: tuple[str, dict[str, Any]]) -> None:
    """``events`` as one bus message from another node, handed to ``hub`` as its receive loop would."""
    body = "\n".join(f"{key}\t{json.dumps(event, ensure_ascii=False)}" for key, event in events)
    hub.receive(f"othernode 1\n{body}")


def test_a_server_keeps_the_recent_lines_of_unwatched_runs_until_their_end() -> None:
    hub = EventHub(backend=object())  # type: ignore[arg-type]
    # Nobody watches run-1 here: its lines are kept (raw), not delivered; other keys are not kept.
    _bus_message(hub, *[("run-1", _log(seq)) for seq in range(3)], ("turn:t", _log(0)), ("#cache", {"cache": "x"}))
    _bus_message(hub, ("run-2", _log(0, 'a "done": true, "type": "status" look-alike')), ("run-1", _log(3)))
    rows = hub.recent_logs("run-1")
    assert [row["seq"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["execution_id"] == "run-1" and "type" not in rows[0]
    assert rows[0]["timestamp"] == datetime(2026, 12, 6, 21, tzinfo=UTC)
    assert [row["message"] for row in hub.recent_logs("run-2")] == ['a "done": true, "type": "status" look-alike']
    assert hub.recent_logs("turn:t") == [] and hub.recent_logs("#cache") == []
    # A status that is not the end keeps them; the end drops them (every line is stored before it).
    _bus_message(hub, ("run-1", {"type": "status", "status": "Running"}))
    assert len(hub.recent_logs("run-1")) == 4
    _bus_message(hub, ("run-1", {"type": "status", "status": "Completed", "done": True}))
    assert hub.recent_logs("run-1") == [] and len(hub.recent_logs("run-2")) == 1
    # A run this server ends itself (a lost node's run) drops them too.
    hub.publish("run-2", {"type": "status", "status": "Failed", "done": True})
    assert hub.recent_logs("run-2") == [] and hub.recent is not None and hub.recent.characters == 0
    # Its own messages coming back are not kept; an in-process hub keeps nothing (its dispatcher holds them).
    hub.receive(f"{hub.node} 2\nrun-3\t{json.dumps(_log(0))}")
    assert hub.recent_logs("run-3") == []
    local = EventHub()
    local.receive(f"othernode 1\nrun-3\t{json.dumps(_log(0))}")
    assert local.recent is None and local.recent_logs("run-3") == []
    assert EventHub(backend=object(), keep_recent_logs=False).recent is None  # type: ignore[arg-type]


def test_kept_lines_are_bounded_per_run_in_all_and_by_age_and_bad_ones_are_skipped() -> None:
    now = [100.0]
    recent = RecentLogs(run_lines=3, total_characters=2_000, keep_seconds=30, clock=lambda: now[0])
    for seq in range(5):
        recent.add("run-1", json.dumps(_log(seq)))
    assert [row["seq"] for row in recent.lines("run-1")] == [2, 3, 4]  # the newest of each run
    # Over the budget in all, the oldest run's oldest lines go first.
    for seq in range(3):
        recent.add("run-2", json.dumps(_log(seq, "x" * 500)))
    assert recent.characters <= 2_000
    assert [row["seq"] for row in recent.lines("run-2")] == [0, 1, 2]
    assert [row["seq"] for row in recent.lines("run-1")] == [4]  # 2 and 3 made room
    # By age: lines older than keep_seconds are gone, newer ones stay.
    now[0] += 20
    recent.add("run-3", json.dumps(_log(0)))
    now[0] += 15
    assert recent.lines("run-2") == [] and [row["seq"] for row in recent.lines("run-3")] == [0]
    now[0] += 30
    assert recent.lines("run-3") == [] and len(recent) == 0 and recent.characters == 0
    # A malformed or hostile line is skipped, never an error, and a repeated seq is shown once.
    for data in (
        '{"type": "log", "seq": "1"}',
        '{"type": "log", "seq": true, "message": "m", "timestamp": "x"}',
        '{"type": "log", "seq": 1, "message": "m", "timestamp": "not a date"}',
        'not json "type": "log"',
        json.dumps(_log(2, "first")),
        json.dumps(_log(2, "again")),
    ):
        recent.add("run-4", data)
    assert [(row["seq"], row["message"]) for row in recent.lines("run-4")] == [(2, "again")]


def test_one_run_printing_huge_lines_cannot_push_out_the_lines_of_the_others() -> None:
    recent = RecentLogs(run_characters=5_000, total_characters=12_000)
    recent.add("quiet", json.dumps(_log(0)))
    for seq in range(100):
        recent.add("noisy", json.dumps(_log(seq, "x" * 1_000)))
    assert [row["seq"] for row in recent.lines("quiet")] == [0]
    assert [row["seq"] for row in recent.lines("noisy")] == [96, 97, 98, 99]  # its newest, under 5,000
    recent.add("huge", json.dumps(_log(0, "y" * 6_000)))  # larger than a run may keep: not kept
    assert recent.lines("huge") == [] and recent.characters == sum(
        len(json.dumps(_log(seq, "x" * 1_000))) for seq in range(96, 100)
    ) + len(json.dumps(_log(0)))


async def test_a_late_viewer_on_another_server_gets_the_lines_published_before_it_came(
    postgres_hubs: tuple[EventHub, EventHub],
) -> None:
    node, server = postgres_hubs
    for seq in range(300):  # nobody watches on the server yet
        node.publish("run-late", _log(seq))
    for _ in range(200):
        if len(server.recent_logs("run-late")) == 300:
            break
        await asyncio.sleep(0.05)
    watcher = server.subscribe("run-late")  # the viewer: kept lines, then live ones
    assert [row["seq"] for row in server.recent_logs("run-late")] == list(range(300))
    node.publish("run-late", _log(300))
    assert (await _next(watcher))["seq"] == 300
    node.publish("run-late", {"type": "status", "status": "Completed", "done": True})
    assert (await _next(watcher))["done"] is True
    assert server.recent_logs("run-late") == []


def test_the_end_of_a_run_on_another_node_drops_its_sdk_token_from_the_cache_here() -> None:
    from app.engine.event_backends import unwire_cache_invalidation, wire_cache_invalidation
    from app.services.actor import Actor
    from app.services.identity import actor_cache

    hub = EventHub(backend=object())  # type: ignore[arg-type]
    wire_cache_invalidation(hub)
    try:
        actor = Actor(
            user_id="u",
            email="u@example.com",
            name="U",
            organization_id=None,
            is_superuser=False,
            acting_org_id=None,
            execution_id="run-9",
        )
        actor_cache.put("token-hash", None, actor)
        assert actor_cache.get("token-hash", None) is actor
        viewer = hub.subscribe("run-9")
        _bus_message(hub, ("run-9", {"type": "status", "status": "Running"}), ("turn:run-9", {"done": True}))
        assert actor_cache.get("token-hash", None) is actor  # neither a status nor another key's end
        _bus_message(hub, ("run-9", {"type": "status", "status": "Completed", "done": True}))
        assert actor_cache.get("token-hash", None) is None
        assert viewer.qsize() == 2  # the viewers still get the end
        actor_cache.put("token-hash", None, actor)  # a resolve that read the run as running just before
        assert actor_cache.get("token-hash", None) is None
    finally:
        unwire_cache_invalidation(hub)
        actor_cache.clear()
