#!/usr/bin/env python
"""Worker start-up: a process forked from the pool's fork server vs a new interpreter. Prints ONE JSON object.

Run ``.venv/bin/python bench/workers.py`` (options: ``--rounds 10 --workers 2``). See ``docs/performance.md``.

What it measures, on ``tests/platform/workspace`` (the workspace the test suite and the other benchmarks use):

* ``scan``: one workspace scan (``app.engine.scan.scan_workspace``), started as ``python -m app.engine.worker
  --scan`` (``direct``, what ``bifrost init`` and ``bifrost workflows`` do) and forked from a warm fork server
  (``forked``, what a running pool does), alternating, ``--rounds`` times each: wall time per scan and the CPU
  the scan process used (user + system, read from the process that reaped it).
* ``replace``: a pool of ``--workers`` warm workers; an idle worker is SIGKILLed and the time until the pool has
  ``--workers`` idle workers again is taken (a timeout or a cancel costs the same replacement), ``--rounds`` times.
* ``fork_server_first_scan_s``: wall time of the first scan, which starts the fork server (its interpreter
  start and imports, paid once per pool).
* ``memory_kib``: Rss and Pss of the fork server and of each idle worker once the pool started.

The CPU of forked children is counted in the fork server (it reaps them): read from ``/proc/<pid>/stat``
(``cutime`` + ``cstime``) before and after each forked scan. Nothing is asserted; the load average is printed
beside the figures, since the box's other work moves them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKSPACE_SOURCE = ROOT / "tests" / "platform" / "workspace"
_TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _reaped_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has reaped (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / _TICK


def _own_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of ``pid`` in KiB (Pss splits the pages it shares with its fork server and siblings)."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            found[name.lower()] = int(rest.split()[0])
    return found


def _summary(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


async def _scans(workspace: Path, rounds: int) -> dict[str, Any]:
    from app.engine.pool import WorkerPool
    from app.engine.scan import scan_workspace

    pool = WorkerPool(workspace, 1)  # its fork server only: the pool is never started
    started = time.perf_counter()
    await pool.scan()
    first_answer = time.perf_counter() - started
    server = pool._fork_server.pid
    assert server is not None
    wall: dict[str, list[float]] = {"direct": [], "forked": []}
    cpu: dict[str, list[float]] = {"direct": [], "forked": []}
    try:
        for _ in range(rounds):
            before, t0 = _own_children_cpu(), time.perf_counter()
            await scan_workspace(workspace)
            wall["direct"].append(time.perf_counter() - t0)
            cpu["direct"].append(_own_children_cpu() - before)
            before, t0 = _reaped_cpu(server), time.perf_counter()
            await pool.scan()
            wall["forked"].append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)  # the exit report (and so the reaping) follows the scan's last line
            cpu["forked"].append(_reaped_cpu(server) - before)
    finally:
        await pool.stop()
    return {
        "fork_server_first_scan_s": round(first_answer, 3),
        "scan_wall_s": {k: _summary(v) for k, v in wall.items()},
        "scan_cpu_s": {k: _summary(v) for k, v in cpu.items()},
    }


async def _replacements(workspace: Path, rounds: int, workers: int) -> dict[str, Any]:
    from app.engine.pool import WorkerPool

    pool = WorkerPool(workspace, workers)
    became_idle = asyncio.Event()
    pool.on_idle = became_idle.set  # called when a worker is ready (or done with a job)

    def idle_live() -> set[int]:
        return {w.pid for w in pool._idle if w.proc.returncode is None}

    t0 = time.perf_counter()
    await pool.start()
    start_wall = time.perf_counter() - t0
    server = pool._fork_server.pid
    assert server is not None
    memory = {"fork_server": _memory_kib(server), "workers": [_memory_kib(pid) for pid in pool.pids()]}
    waits: list[float] = []
    try:
        for _ in range(rounds):
            victim = pool.pids()[0]
            t0 = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            # Replaced: as many live idle workers as before, the victim not among them.
            while victim in idle_live() or len(idle_live()) < workers:
                became_idle.clear()
                await became_idle.wait()
            waits.append(time.perf_counter() - t0)
    finally:
        await pool.stop()
    return {"pool_start_s": round(start_wall, 3), "replace_s": _summary(waits), "memory_kib": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bifrost-bench-workers-"))
    workspace = scratch / "workspace"
    shutil.copytree(WORKSPACE_SOURCE, workspace)
    try:
        load_before = os.getloadavg()
        log(f"scans: {args.rounds} direct and {args.rounds} forked, alternating")
        scans = asyncio.run(_scans(workspace, args.rounds))
        log(f"replacements: {args.rounds} SIGKILLs of an idle worker in a pool of {args.workers}")
        replace = asyncio.run(_replacements(workspace, args.rounds, args.workers))
        result = {
            "benchmark": "workers",
            "rounds": args.rounds,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            **scans,
            **replace,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
