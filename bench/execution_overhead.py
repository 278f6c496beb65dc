#!/usr/bin/env python
"""Execution overhead benchmark: no-op workflow latency and throughput, import time, idle memory.

Run ``make bench`` (or ``.venv/bin/python bench/execution_overhead.py``). Prints ONE JSON
object on stdout; progress goes to stderr. See ``docs/performance.md``.

Layout (two processes, loopback only):

* **server process** — this same file started with ``--child DIR``. It runs the real
  ``app.web.server.running_server`` (migrations on a fresh SQLite file in DIR, a warm
  pool of ``--workers`` worker processes, Litestar on uvicorn on an ephemeral
  127.0.0.1 port), on uvloop when installed (as ``bifrost serve`` does through
  ``uvicorn.run``). It seeds one organization, a user and an API key, then waits for
  commands on stdin. The submit-service benchmark runs *inside* this process, on the
  server's own event loop (no HTTP), while the HTTP server is idle.
* **load generator** — the parent process: ``httpx.AsyncClient`` with keep-alive,
  1 and 8 concurrent clients calling ``POST /api/workflows/noop/execute?wait=true``.
  Its CPU is not spent on the server's loop (but on a 2-core machine it does compete
  for the cores; client and server CPU per run are reported so this is visible).

Memory is read from ``/proc/<pid>/status`` (VmRSS) and ``/proc/<pid>/smaps_rollup`` (Pss) of
the server process and of its descendants (the warm workers): no psutil needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
WORKSPACE_SOURCE = ROOT / "tests" / "platform" / "workspace"
WORKFLOW = "noop"

# From the issue. "p50" and "runs/s" are judged on the JSON API (1 client and 8 clients
# respectively); "import" on the net ``import bifrost`` time; "rss" on server + workers.
TARGETS = {
    "api_p50_ms_max": 5.0,
    "api_runs_per_s_min": 300.0,
    "import_bifrost_ms_max": 150.0,
    "idle_rss_mib_max": 300.0,
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ----- statistics --------------------------------------------------------------------------------
def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (q in [0, 1])."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(latencies_s: list[float], elapsed_s: float) -> dict[str, Any]:
    values = sorted(v * 1000.0 for v in latencies_s)
    return {
        "runs": len(values),
        "seconds": round(elapsed_s, 3),
        "runs_per_s": round(len(values) / elapsed_s, 1) if elapsed_s > 0 else None,
        "p50_ms": round(quantile(values, 0.50), 3),
        "p95_ms": round(quantile(values, 0.95), 3),
        "p99_ms": round(quantile(values, 0.99), 3),
        "mean_ms": round(statistics.fmean(values), 3) if values else None,
        "min_ms": round(values[0], 3) if values else None,
        "max_ms": round(values[-1], 3) if values else None,
    }


# ----- /proc ---------------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces; everything after the last ')' is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (scan of /proc/*/stat parent ids)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                parents[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(kids)
        frontier.extend(kids)
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_kib(pid: int) -> dict[str, int | None]:
    """VmRSS and Pss (proportional: shared pages split between sharers) in KiB."""
    rss = pss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return {"rss_kib": rss, "pss_kib": pss}


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def memory_report(server_pid: int) -> dict[str, Any]:
    def mib(kib: int | None) -> float | None:
        return round(kib / 1024, 1) if kib is not None else None

    server = memory_kib(server_pid)
    workers = []
    for pid in descendants(server_pid):
        mem = memory_kib(pid)
        workers.append(
            {"pid": pid, "cmd": process_name(pid)[-80:], "rss_mib": mib(mem["rss_kib"]), "pss_mib": mib(mem["pss_kib"])}
        )
    total_rss = (server["rss_kib"] or 0) + sum(round(w["rss_mib"] * 1024) for w in workers if w["rss_mib"])
    total_pss = (server["pss_kib"] or 0) + sum(round(w["pss_mib"] * 1024) for w in workers if w["pss_mib"])
    return {
        "server_rss_mib": mib(server["rss_kib"]),
        "server_pss_mib": mib(server["pss_kib"]),
        "workers": workers,
        "workers_rss_mib": round(sum(w["rss_mib"] or 0 for w in workers), 1),
        "total_rss_mib": mib(total_rss),
        "total_pss_mib": mib(total_pss) if server["pss_kib"] is not None else None,
    }


# ===== server process (``--child``) ===================================================================
async def _seed(platform_: Any) -> dict[str, Any]:
    """One organization with one user and an API key (the key an API client would use)."""
    from app.db import transaction
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService

    async with transaction(platform_.sessions) as session:
        users = UserService(session)
        auth = AuthService(session)
        admin = await users.create(None, "admin@bench.local", "Admin", is_superuser=True)
        admin_actor = await auth.actor_for_user(admin.id)
        org = await OrganizationService(session).create(admin_actor, "Bench Org", domain="bench.local")
        user = await users.create(admin_actor, "user@bench.local", "Bench User", org_id=org.id)
        _, key = await ApiKeyService(session).create(await auth.actor_for_user(user.id), "bench key")
    return {"api_key": key, "user_id": user.id}


async def _service_bench(
    platform_: Any, counters: DbCounters, user_id: str, concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Submit through ExecutionService and wait on the dispatcher, in this (the server's) loop."""
    from sqlalchemy import func, select

    from app.db import transaction
    from app.models import Execution
    from app.services.executions.service import ExecutionService
    from app.services.identity.auth import AuthService

    async with transaction(platform_.sessions) as session:
        actor = await AuthService(session).actor_for_user(user_id)

    async def one() -> tuple[float, float, str]:
        t0 = time.perf_counter()
        async with transaction(platform_.sessions) as session:
            execution = await ExecutionService(session, platform_.dispatcher).submit(WORKFLOW, {}, actor)
        t1 = time.perf_counter()
        await platform_.dispatcher.wait(execution.id)
        t2 = time.perf_counter()
        return t2 - t0, t1 - t0, execution.id

    async def phase(seconds: float) -> tuple[list[float], list[float], list[str], float]:
        totals: list[float] = []
        submits: list[float] = []
        ids: list[str] = []
        start = time.perf_counter()
        deadline = start + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                total, submit, execution_id = await one()
                totals.append(total)
                submits.append(submit)
                ids.append(execution_id)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return totals, submits, ids, time.perf_counter() - start

    await phase(warmup)
    counters.reset()
    cpu0 = time.process_time()
    totals, submits, ids, elapsed = await phase(duration)
    cpu = time.process_time() - cpu0
    db = counters.per_run(len(totals))
    async with transaction(platform_.sessions) as session:
        stmt = select(Execution.status, func.count()).where(Execution.id.in_(ids)).group_by(Execution.status)  # type: ignore[attr-defined]
        statuses = {status: count for status, count in (await session.execute(stmt)).all()}
    summary = summarize(totals, elapsed)
    submit_sorted = sorted(s * 1000 for s in submits)
    summary["submit_p50_ms"] = round(quantile(submit_sorted, 0.5), 3)
    summary["statuses"] = statuses
    summary["server_process_cpu_ms_per_run"] = round(cpu * 1000 / max(1, len(totals)), 3)
    summary.update(db)
    return summary


class DbCounters:
    """Counts SQL statements and transactions on the platform's engine (SQLAlchemy events)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.statements = self.transactions = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_statement)
        event.listen(engine.sync_engine, "begin", self._on_begin)

    def _on_statement(self, *_args: Any) -> None:
        self.statements += 1

    def _on_begin(self, *_args: Any) -> None:
        self.transactions += 1

    def reset(self) -> None:
        self.statements = self.transactions = 0

    def per_run(self, runs: int) -> dict[str, float]:
        # BEGIN IMMEDIATE is issued by app.db's "begin" listener: not counted as a statement.
        statements = self.statements - self.transactions
        return {
            "db_transactions_per_run": round(self.transactions / max(1, runs), 2),
            "sql_statements_per_run": round(statements / max(1, runs), 2),
        }


async def _child(directory: Path, workers: int) -> None:
    # Protocol on a private copy of stdout; anything else printed goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from app.settings import Settings
    from app.web.server import running_server

    workspace = directory / "workspace"
    shutil.copytree(WORKSPACE_SOURCE, workspace)
    # Product defaults (log flush 1 s, workspace watcher on as in `bifrost serve`), 2 workers.
    settings = Settings(
        home=directory / "home", workspace=workspace, database_url=None, workers=workers, host="127.0.0.1"
    )
    async with running_server(settings, recover=True, watch=True) as (platform_, url):
        seeded = await _seed(platform_)
        counters = DbCounters(platform_.engine)
        loop_name = type(asyncio.get_running_loop()).__module__
        proto.write(
            json.dumps(
                {
                    "ready": True,
                    "url": url,
                    "pid": os.getpid(),
                    "worker_pids": platform_.pool.pids(),
                    "loop": loop_name,
                    **seeded,
                }
            )
            + "\n"
        )
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "service":
                reply = await _service_bench(
                    platform_,
                    counters,
                    seeded["user_id"],
                    command["concurrency"],
                    command["warmup"],
                    command["duration"],
                )
            elif command["cmd"] == "reset_counters":
                counters.reset()
                reply = {}
            elif command["cmd"] == "counters":
                reply = counters.per_run(command["runs"])
            elif command["cmd"] == "pids":
                reply = {"worker_pids": platform_.pool.pids(), "pool": platform_.pool.stats()}
            else:
                reply = {"error": f"unknown command {command['cmd']!r}"}
            proto.write(json.dumps(reply) + "\n")
    proto.close()


def child_main(directory: Path, workers: int) -> None:
    try:
        import uvloop
    except ImportError:  # uvicorn.run falls back to asyncio too
        asyncio.run(_child(directory, workers))
    else:
        uvloop.run(_child(directory, workers))


# ===== load generator (parent) =========================================================================
class ServerProcess:
    """The ``--child`` server process and its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info
        self.pid: int = info["pid"]
        self.url: str = info["url"]

    @classmethod
    async def start(cls, directory: Path, workers: int) -> ServerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "--child", str(directory), "--workers", str(workers),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"server process exited before it was ready (code {await proc.wait()})")
        return cls(proc, json.loads(line))

    async def call(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("server process exited")
        return json.loads(line)

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        leftovers = descendants(self.pid)
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 30)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            log("server process did not stop; killing it and its workers")
            self.proc.kill()
            await self.proc.wait()
            for pid in leftovers:  # workers lead their own process groups
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass


def cpu_snapshot(server: ServerProcess) -> dict[str, float]:
    return {
        "server": cpu_seconds(server.pid),
        "workers": sum(cpu_seconds(p) for p in descendants(server.pid)),
        "client": time.process_time(),
    }


def cpu_per_run(before: dict[str, float], after: dict[str, float], runs: int) -> dict[str, float]:
    return {f"{name}_cpu_ms_per_run": round((after[name] - before[name]) * 1000 / max(1, runs), 3) for name in before}


async def http_bench(
    server: ServerProcess, concurrency: int, warmup: float, duration: float, *, healthz: bool = False
) -> dict[str, Any]:
    """``concurrency`` clients in a closed loop; ``healthz`` measures GET /healthz (the HTTP floor) instead."""
    import httpx

    key = server.info["api_key"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
    ) as client:
        failures: list[str] = []

        async def phase(seconds: float) -> tuple[list[float], float]:
            latencies: list[float] = []
            start = time.perf_counter()
            deadline = start + seconds

            async def one_client() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    if healthz:
                        response = await client.get("/healthz")
                    else:
                        response = await client.post(
                            f"/api/workflows/{WORKFLOW}/execute", params={"wait": "true"}, json={"params": {}}
                        )
                    latencies.append(time.perf_counter() - t0)
                    ok = response.status_code == 200 and (healthz or response.json().get("status") == "Completed")
                    if not ok:
                        failures.append(f"{response.status_code} {response.text[:200]}")

            await asyncio.gather(*(one_client() for _ in range(concurrency)))
            return latencies, time.perf_counter() - start

        await phase(warmup)
        failures.clear()
        await server.call({"cmd": "reset_counters"})
        before = cpu_snapshot(server)
        latencies, elapsed = await phase(duration)
        after = cpu_snapshot(server)
    result = summarize(latencies, elapsed)
    result.update(cpu_per_run(before, after, len(latencies)))
    result.update(await server.call({"cmd": "counters", "runs": len(latencies)}))
    result["failures"] = len(failures)
    if failures:
        result["first_failure"] = failures[0]
    return result


async def service_bench(server: ServerProcess, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    before = cpu_snapshot(server)
    result = await server.call({"cmd": "service", "concurrency": concurrency, "warmup": warmup, "duration": duration})
    after = cpu_snapshot(server)
    # The snapshot spans warm-up too; the child measured its own loop's CPU over the timed phase only.
    workers_cpu = (after["workers"] - before["workers"]) * 1000
    result["workers_cpu_ms_per_run_incl_warmup"] = round(workers_cpu / max(1, result["runs"]), 3)
    return result


# ----- import / CLI start-up ---------------------------------------------------------------------------
def _timed_run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
    return time.perf_counter() - t0


def _importtime_bifrost_us(python: str) -> tuple[int, list[tuple[str, int]]]:
    """Cumulative ``-X importtime`` microseconds of ``bifrost`` and the slowest self-times."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", "import bifrost"], check=True, capture_output=True, text=True, cwd=str(ROOT)
    )
    cumulative = 0
    selfs: list[tuple[str, int]] = []
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            self_us, cum_us, _, name = int(match[1]), int(match[2]), match[3], match[4]
            selfs.append((name, self_us))
            if name == "bifrost":
                cumulative = cum_us
    selfs.sort(key=lambda item: -item[1])
    return cumulative, selfs[:8]


def startup_bench(repeats: int) -> dict[str, Any]:
    python = sys.executable
    cli = str(Path(python).parent / "bifrost")
    baseline, imports, helps, importtimes = [], [], [], []
    for argv in ([python, "-c", "pass"], [python, "-c", "import bifrost"], [cli, "--help"]):
        _timed_run(argv)  # page cache / pyc warm-up
    for _ in range(repeats):  # interleaved so that drift affects all three alike
        baseline.append(_timed_run([python, "-c", "pass"]))
        imports.append(_timed_run([python, "-c", "import bifrost"]))
        helps.append(_timed_run([cli, "--help"]))
        importtimes.append(_importtime_bifrost_us(python))
    base = statistics.median(baseline) * 1000
    imp = statistics.median(imports) * 1000
    hlp = statistics.median(helps) * 1000
    return {
        "repeats": repeats,
        "python_bare_ms": round(base, 1),
        "import_bifrost_raw_ms": round(imp, 1),
        "import_bifrost_net_ms": round(imp - base, 1),
        "import_bifrost_importtime_ms": round(statistics.median(t[0] for t in importtimes) / 1000, 1),
        "import_bifrost_slowest_self_us": importtimes[-1][1],
        "bifrost_help_raw_ms": round(hlp, 1),
        "bifrost_help_net_ms": round(hlp - base, 1),
    }


# ----- main --------------------------------------------------------------------------------------------
def load_average() -> list[float] | None:
    """1/5/15-minute load averages: other work on the machine skews every figure."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_avg_start": load_average(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        info["mem_total_mib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024)
    except (OSError, ValueError, IndexError):
        pass
    return info


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    api1, api8 = result["api"]["clients_1"], result["api"]["clients_8"]
    best_rate = max(api1["runs_per_s"] or 0, api8["runs_per_s"] or 0)
    checks = {
        "api_p50_ms": (api1["p50_ms"], "<=", TARGETS["api_p50_ms_max"]),
        "api_runs_per_s": (best_rate, ">=", TARGETS["api_runs_per_s_min"]),
        "import_bifrost_ms": (result["startup"]["import_bifrost_net_ms"], "<=", TARGETS["import_bifrost_ms_max"]),
        "idle_rss_mib": (result["memory"]["idle"]["total_rss_mib"], "<=", TARGETS["idle_rss_mib_max"]),
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
        "benchmark": "execution_overhead",
        "machine": machine_info(),
        "config": {
            "workers": args.workers,
            "workflow": WORKFLOW,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "database": "SQLite (temporary file, WAL)",
            "server": "separate process (bench/execution_overhead.py --child): running_server, uvicorn+httptools",
            "client": "httpx.AsyncClient, keep-alive, one connection per concurrent client",
        },
        "targets": TARGETS,
    }
    log(f"start-up times ({args.repeats} runs each)")
    result["startup"] = startup_bench(args.repeats)

    directory = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    server: ServerProcess | None = None
    try:
        log(f"starting the server process ({args.workers} workers) in {directory}")
        t0 = time.perf_counter()
        server = await ServerProcess.start(directory, args.workers)
        result["config"]["server_start_s"] = round(time.perf_counter() - t0, 2)
        result["config"]["event_loop"] = server.info["loop"]
        log(f"server on {server.url} (pid {server.pid}, workers {server.info['worker_pids']})")

        await asyncio.sleep(args.settle)
        result["memory"] = {"idle": memory_report(server.pid)}
        log(f"idle memory: {result['memory']['idle']['total_rss_mib']} MiB RSS")

        result["api"] = {}
        log(f"HTTP floor: GET /healthz, 1 client: {args.warmup:g}s warm-up + {args.duration / 2:g}s")
        result["api"]["healthz_clients_1"] = await http_bench(server, 1, args.warmup, args.duration / 2, healthz=True)
        for concurrency in (1, 8):
            log(f"JSON API, {concurrency} client(s): {args.warmup:g}s warm-up + {args.duration:g}s")
            result["api"][f"clients_{concurrency}"] = await http_bench(server, concurrency, args.warmup, args.duration)
            log(
                f"  -> {json.dumps({k: result['api'][f'clients_{concurrency}'][k] for k in ('runs_per_s', 'p50_ms', 'p95_ms', 'p99_ms')})}"
            )

        result["service"] = {}
        for concurrency in (1, 8):
            log(
                f"submit service in the server loop, {concurrency} concurrent: {args.warmup:g}s warm-up + {args.duration:g}s"
            )
            result["service"][f"concurrent_{concurrency}"] = await service_bench(
                server, concurrency, args.warmup, args.duration
            )
            log(
                f"  -> {json.dumps({k: result['service'][f'concurrent_{concurrency}'][k] for k in ('runs_per_s', 'p50_ms', 'p95_ms', 'p99_ms')})}"
            )

        await asyncio.sleep(args.settle)
        result["memory"]["idle_after_load"] = memory_report(server.pid)
        pool = await server.call({"cmd": "pids"})
        result["memory"]["pool"] = pool["pool"]
    finally:
        if server is not None:
            await server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    result["machine"]["load_avg_end"] = load_average()
    result["verdicts"] = verdicts(result)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="warm worker processes (default 2)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per scenario (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="runs of each start-up measurement (default 10)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before reading memory (default 2)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.workers)
        return 0
    result = asyncio.run(parent_main(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
