#!/usr/bin/env python
"""HTTP endpoint benchmark: a sync no-op endpoint's latency and throughput with 1 and 8 clients.

Run ``.venv/bin/python bench/endpoints.py``. Prints ONE JSON object on stdout; progress goes to
stderr. See ``docs/triggers.md``.

The server is the one ``bench/execution_overhead.py`` starts (``--child``: the real
``running_server`` on a fresh SQLite file, a warm pool of ``--workers`` processes, uvicorn on
uvloop, one seeded organization, user and API key), whose workspace is ``tests/platform/workspace``
with ``endpoint_noop`` (``@workflow(endpoint_enabled=True)``: POST, auto mode, so sync). The load
generator (this process) calls ``POST /api/endpoints/endpoint_noop`` with ``X-Bifrost-Key`` and no
body from 1 and 8 concurrent keep-alive clients in a closed loop, and checks every answer is ``200``
with the body ``null`` and an execution id. The JSON API's execute route is measured the same way
for comparison (what the endpoint adds: parameter reading and the endpoint checks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execution_overhead as base

ENDPOINT = "/api/endpoints/endpoint_noop"
TARGETS = {"endpoint_p50_ms_max": 5.0, "endpoint_runs_per_s_min": 300.0}


async def closed_loop(
    server: base.ServerProcess, concurrency: int, warmup: float, duration: float, *, endpoint: bool
) -> dict[str, Any]:
    """``concurrency`` clients calling the endpoint (or the execute route) back to back."""
    import httpx

    key = server.info["api_key"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-Bifrost-Key": key}, timeout=30, limits=limits
    ) as client:
        failures: list[str] = []

        async def call() -> None:
            if endpoint:
                response = await client.post(ENDPOINT)
                ok = response.status_code == 200 and response.content == b"null"
                ok = ok and bool(response.headers.get("x-bifrost-execution-id"))
            else:
                response = await client.post(
                    f"/api/workflows/{base.WORKFLOW}/execute", params={"wait": "true"}, json={"params": {}}
                )
                ok = response.status_code == 200 and response.json().get("status") == "Completed"
            if not ok:
                failures.append(f"{response.status_code} {response.text[:200]}")

        async def phase(seconds: float) -> tuple[list[float], float]:
            latencies: list[float] = []
            start = time.perf_counter()
            deadline = start + seconds

            async def one_client() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    await call()
                    latencies.append(time.perf_counter() - t0)

            await asyncio.gather(*(one_client() for _ in range(concurrency)))
            return latencies, time.perf_counter() - start

        await phase(warmup)
        failures.clear()
        await server.call({"cmd": "reset_counters"})
        before = base.cpu_snapshot(server)
        latencies, elapsed = await phase(duration)
        after = base.cpu_snapshot(server)
    result = base.summarize(latencies, elapsed)
    result.update(base.cpu_per_run(before, after, len(latencies)))
    result.update(await server.call({"cmd": "counters", "runs": len(latencies)}))
    result["failures"] = len(failures)
    if failures:
        result["first_failure"] = failures[0]
    return result


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    one, eight = result["endpoint"]["clients_1"], result["endpoint"]["clients_8"]
    best_rate = max(one["runs_per_s"] or 0, eight["runs_per_s"] or 0)
    checks = {
        "endpoint_p50_ms": (one["p50_ms"], "<=", TARGETS["endpoint_p50_ms_max"]),
        "endpoint_runs_per_s": (best_rate, ">=", TARGETS["endpoint_runs_per_s_min"]),
    }
    return {
        name: {
            "measured": value,
            "target": f"{op} {target:g}",
            "pass": bool(value <= target if op == "<=" else value >= target),
        }
        for name, (value, op, target) in checks.items()
    }


async def parent_main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "endpoints",
        "machine": base.machine_info(),
        "config": {
            "workers": args.workers,
            "endpoint": f"POST {ENDPOINT} (sync, no body, X-Bifrost-Key)",
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "database": "SQLite (temporary file, WAL)",
            "server": "separate process (bench/execution_overhead.py --child): running_server, uvicorn+httptools",
            "client": "httpx.AsyncClient, keep-alive, one connection per concurrent client",
        },
        "targets": TARGETS,
    }
    directory = Path(tempfile.mkdtemp(prefix="bifrost-bench-endpoints-"))
    server: base.ServerProcess | None = None
    try:
        base.log(f"starting the server process ({args.workers} workers) in {directory}")
        server = await base.ServerProcess.start(directory, args.workers)
        result["config"]["event_loop"] = server.info["loop"]
        await asyncio.sleep(args.settle)
        for label, endpoint in (("endpoint", True), ("api_execute", False)):
            result[label] = {}
            for concurrency in (1, 8):
                base.log(f"{label}, {concurrency} client(s): {args.warmup:g}s warm-up + {args.duration:g}s")
                figures = await closed_loop(server, concurrency, args.warmup, args.duration, endpoint=endpoint)
                result[label][f"clients_{concurrency}"] = figures
                base.log(f"  -> {json.dumps({k: figures[k] for k in ('runs_per_s', 'p50_ms', 'p95_ms', 'failures')})}")
    finally:
        if server is not None:
            await server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    result["machine"]["load_avg_end"] = base.load_average()
    result["verdicts"] = verdicts(result)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="warm worker processes (default 2)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per scenario (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario (default 2)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds after start-up (default 2)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(parent_main(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
