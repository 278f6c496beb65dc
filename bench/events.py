#!/usr/bin/env python
"""Live events across servers: how long a published event takes to reach a subscriber on another server.

Run ``.venv/bin/python bench/events.py`` (``--events 500 --burst 10000``). Prints ONE JSON object on stdout;
progress goes to stderr. See ``docs/deploy.md`` ("Live events and caches across servers").

Two :class:`~app.engine.events.EventHub` objects stand for server A and server B, each with its own bus
connections (Postgres LISTEN/NOTIFY at ``BIFROST_BENCH_POSTGRES_URL`` or ``BIFROST_TEST_POSTGRES_URL``,
Redis pub/sub at ``BIFROST_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); a bus that is not
reachable is reported as skipped. Both run in this process on one event loop: one clock, and the loop's
own scheduling is part of what is measured (as in a server).

* ``latency_ms`` — a status-sized event published on A, one at a time every 5 ms, until it is in B's
  subscriber queue (``local``: A's own subscriber, the in-process fast path every server keeps).
* ``burst`` — ``--burst`` log lines of 100 characters published at once on A (a chatty run): events/s
  until the last is in B's queue, and how many bus messages carried them (several events per NOTIFY).
* ``unwatched_us_per_event`` — what B pays per event of a run nobody watches on B (it reads the key and
  skips the JSON), from :meth:`EventHub.receive` on ready-made messages: the cost of one shared channel.
* ``rate_limit_call_ms`` — one counted call of a rate limit: in memory (one server), in the database
  (an upsert in a scratch Postgres database made and dropped by the bench), in Redis.
* ``listen_unlisten_ms`` (Postgres) — one LISTEN and UNLISTEN round trip: what a channel per execution
  would cost each viewer instead (and, between subscribing and the LISTEN, events could be missed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import socket
import statistics
import sys
import time
from typing import Any

from app.engine.event_backends import POSTGRES_MAX_PAYLOAD, REDIS_MAX_PAYLOAD, libpq_dsn, redis_backend
from app.engine.events import EventHub


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p99": round(_percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


async def _latency(server_a: EventHub, server_b: EventHub, events: int) -> list[float]:
    queue = server_b.subscribe("bench-run")
    samples = []
    try:
        for n in range(events):
            started = time.perf_counter()
            server_a.publish("bench-run", {"type": "status", "status": "Running", "n": n})
            while True:
                event = await asyncio.wait_for(queue.get(), 10)
                if event.get("n") == n:
                    break
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    finally:
        server_b.unsubscribe("bench-run", queue)
    return samples


async def _burst(server_a: EventHub, server_b: EventHub, count: int) -> dict[str, Any]:
    queue = server_b.subscribe("bench-burst")
    batches_before = server_a._batch
    line = "x" * 100
    try:
        started = time.perf_counter()
        for seq in range(count):
            server_a.publish("bench-burst", {"type": "log", "seq": seq, "level": "INFO", "message": line})
        got = 0
        while got < count:
            event = await asyncio.wait_for(queue.get(), 30)
            got = event["seq"] + 1
        elapsed = time.perf_counter() - started
    finally:
        server_b.unsubscribe("bench-burst", queue)
    return {
        "events": count,
        "events_per_s": round(count / elapsed),
        "bus_messages": server_a._batch - batches_before if server_a.distributed else 0,
    }


def _unwatched_cost() -> float:
    hub = EventHub()
    hub.subscribe("watched-elsewhere")
    body = "\n".join(f"run-{n}\t" + json.dumps({"type": "log", "seq": n, "message": "x" * 100}) for n in range(40))
    payload = f"other 1\n{body}".encode()
    rounds = 2_000
    started = time.perf_counter()
    for _ in range(rounds):
        hub.receive(payload)
    return round((time.perf_counter() - started) / (rounds * 40) * 1e6, 3)


async def _listen_cost(url: str, rounds: int = 200) -> dict[str, float]:
    """What one LISTEN + UNLISTEN per viewer (a channel per execution, the road not taken) would cost."""
    import asyncpg

    conn = await asyncpg.connect(libpq_dsn(url))
    samples = []
    try:
        for n in range(rounds):
            started = time.perf_counter()
            await conn.add_listener(f"bench_run_{n}", lambda *_: None)
            await conn.remove_listener(f"bench_run_{n}", lambda *_: None)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await conn.close()
    return _summary(samples)


async def _scratch_database(url: str) -> str:
    import asyncpg

    name = f"bifrost_bench_events_{os.getpid()}"
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{url.rpartition('/')[0]}/{name}"


async def _drop_database(url: str, scratch: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{scratch.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def _rate_limit_costs(postgres_url: str | None, redis_url: str | None, calls: int = 300) -> dict[str, Any]:
    """Milliseconds one counted call costs with each rate-limit store (a public request pays it once)."""
    from app.db import create_engine, session_factory, upgrade_database_async
    from app.services.rate_limits import DatabaseCounter, LocalCounter, RateLimits, RedisCounter

    async def measure(limits: RateLimits) -> dict[str, float]:
        samples = []
        for n in range(calls):
            started = time.perf_counter()
            await limits.retry_after("bench", 1_000_000, f"203.0.113.{n % 50}")
            samples.append((time.perf_counter() - started) * 1000)
        return _summary(samples[20:])

    costs: dict[str, Any] = {"local": await measure(RateLimits(LocalCounter()))}
    if postgres_url:
        await upgrade_database_async(postgres_url)
        engine = create_engine(postgres_url)
        try:
            costs["database"] = await measure(RateLimits(DatabaseCounter(session_factory(engine)), shared=True))
        finally:
            await engine.dispose()
    if redis_url:
        counter = RedisCounter(redis_url)
        try:
            costs["redis"] = await measure(RateLimits(counter, shared=True))
        finally:
            await counter.redis.aclose()
    return costs


def _reachable(host_name: str, port: int) -> bool:
    try:
        with socket.create_connection((host_name, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _pair(kind: str, channel: str) -> tuple[EventHub, EventHub] | str:
    if kind == "local":
        hub = EventHub()
        return hub, hub
    if kind == "postgres":
        url = os.environ.get("BIFROST_BENCH_POSTGRES_URL") or os.environ.get("BIFROST_TEST_POSTGRES_URL")
        if not url:
            return "skipped: set BIFROST_BENCH_POSTGRES_URL or BIFROST_TEST_POSTGRES_URL"
        from app.engine.pg_channels import PostgresBackend

        hubs = tuple(
            EventHub(PostgresBackend(libpq_dsn(url)), max_payload=POSTGRES_MAX_PAYLOAD, channel=channel)
            for _ in range(2)
        )
    else:
        url = os.environ.get("BIFROST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        if not _reachable("127.0.0.1", 6379) and "127.0.0.1" in url:
            return "skipped: no Redis at 127.0.0.1:6379"
        hubs = tuple(EventHub(redis_backend(url), max_payload=REDIS_MAX_PAYLOAD, channel=channel) for _ in range(2))
    for hub in hubs:
        await hub.start()
    return hubs[0], hubs[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--burst", type=int, default=10_000)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "bench": "events",
        "python": host.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "events": args.events,
        "backends": {},
    }
    for kind in ("local", "postgres", "redis"):
        _say(f"events: {kind}")
        pair = await _pair(kind, f"bifrost_bench_{os.getpid()}")
        if isinstance(pair, str):
            result["backends"][kind] = pair
            continue
        server_a, server_b = pair
        try:
            await _latency(server_a, server_b, 20)  # warm-up: connections, prepared statements
            samples = await _latency(server_a, server_b, args.events)
            burst = await _burst(server_a, server_b, args.burst)
        finally:
            if server_a is not server_b:
                await server_a.stop()
                await server_b.stop()
        result["backends"][kind] = {
            "latency_ms": _summary(samples),
            "burst": burst,
            "loadavg": os.getloadavg(),
        }
        if kind == "postgres":
            url = os.environ.get("BIFROST_BENCH_POSTGRES_URL") or os.environ.get("BIFROST_TEST_POSTGRES_URL") or ""
            result["backends"][kind]["listen_unlisten_ms"] = await _listen_cost(url)
    result["unwatched_us_per_event"] = _unwatched_cost()
    # Rate limits go in a database of their own (the table is created by the migrations): never a real install's.
    pg = os.environ.get("BIFROST_BENCH_POSTGRES_URL") or os.environ.get("BIFROST_TEST_POSTGRES_URL")
    bench_db = await _scratch_database(pg) if pg else None
    try:
        redis_url = os.environ.get("BIFROST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        redis_ok = _reachable("127.0.0.1", 6379) or "127.0.0.1" not in redis_url
        result["rate_limit_call_ms"] = await _rate_limit_costs(bench_db, redis_url if redis_ok else None)
        result["rate_limit_call_ms"]["loadavg"] = os.getloadavg()
    finally:
        if pg and bench_db:
            await _drop_database(pg, bench_db)
    result["loadavg_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
