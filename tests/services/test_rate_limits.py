"""Rate-limit counters: in this process, and shared by two servers through the database (SQLite, Postgres) or Redis."""

from __future__ import annotations

import socket
import uuid

import pytest

from app.db import create_engine, session_factory, upgrade_database_async
from app.services.rate_limits import DatabaseCounter, LocalCounter, RateLimits, RedisCounter

NOW = 1_800_000_000.0  # a window start (a multiple of 60)


async def _limited(server_a: RateLimits, server_b: RateLimits, who: str) -> list[float | None]:
    """Six attempts of one address alternating between two servers, against a budget of 4 per minute."""
    answers = []
    for attempt in range(6):
        server = server_a if attempt % 2 == 0 else server_b
        answers.append(await server.retry_after("login", 4, who, now=NOW + attempt))
    return answers


async def test_local_counts_are_per_process_and_reset_with_the_window() -> None:
    server_a, server_b = RateLimits(), RateLimits(LocalCounter())
    assert await _limited(server_a, server_b, "10.0.0.1") == [None] * 6  # each server saw only 3: not shared
    alone = RateLimits()
    answers = [await alone.retry_after("login", 2, "a", now=NOW + i) for i in range(3)]
    assert answers[:2] == [None, None] and answers[2] == pytest.approx(58.0)
    assert await alone.retry_after("login", 2, "a", now=NOW + 60) is None  # the next window
    assert await alone.retry_after("public_form", 2, "a", now=NOW + 2) is None  # limits count apart


async def test_attacker_alternating_two_servers_meets_one_budget_in_the_database(database_url: str) -> None:
    await upgrade_database_async(database_url)
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        server_a, server_b = (RateLimits(DatabaseCounter(session_factory(e)), shared=True) for e in engines)
        answers = await _limited(server_a, server_b, "203.0.113.7")
        assert answers[:4] == [None] * 4
        assert answers[4] == pytest.approx(56.0) and answers[5] == pytest.approx(55.0)
        # Another address has its own budget; the next minute starts afresh (and prunes old windows).
        assert await server_b.retry_after("login", 4, "203.0.113.8", now=NOW + 6) is None
        assert await server_a.retry_after("login", 4, "203.0.113.7", now=NOW + 60) is None
    finally:
        for engine in engines:
            await engine.dispose()


async def test_attacker_alternating_two_servers_meets_one_budget_in_redis() -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        pytest.skip("shared limits in Redis need a Redis server at 127.0.0.1:6379")
    url = "redis://127.0.0.1:6379/0"
    counters = [RedisCounter(url), RedisCounter(url)]
    try:
        server_a, server_b = (RateLimits(c, shared=True) for c in counters)
        answers = await _limited(server_a, server_b, f"198.51.100.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}")
        assert answers[:4] == [None] * 4 and answers[4] is not None and answers[5] is not None
    finally:
        for counter in counters:
            await counter.redis.aclose()
