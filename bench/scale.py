#!/usr/bin/env python
"""Scale-out: runs/s of a no-op and of an I/O-bound workflow, embedded and with 1 and 2 worker nodes.

Run ``.venv/bin/python bench/scale.py`` (needs a Postgres server: ``--postgres-url``, default
``BIFROST_TEST_POSTGRES_URL``). Prints ONE JSON object on stdout; progress goes to stderr. See
``docs/performance.md`` ("Scale-out").

Systems, each started on its own fresh database and stopped before the next:

* **embedded**: ``bifrost serve`` on SQLite with the default ``BIFROST_WORKERS`` (the CPU count).
* **nodes_1** / **nodes_2**: ``bifrost serve`` with ``BIFROST_QUEUE=postgres`` on a fresh Postgres
  database (dropped at the end) and 1 or 2 ``bifrost worker`` nodes with their default concurrency
  (8 warm processes per core, capped by free memory).

Per system:

* **noop latency**: one client, ``POST /api/workflows/noop/execute?wait=true`` one call at a time (p50).
* **noop runs/s** and **io runs/s**: ``--runs`` runs submitted by 16 concurrent clients without
  waiting, then measured from the database: runs divided by the time from the first run's creation
  to the last one's completion. ``io`` is ``await asyncio.sleep(0.5)``, what a workflow waiting on a
  remote API looks like.

Each phase records the load average next to its figure.

Faster iterations: ``--phases latency`` measures only the p50 (``--calls`` fewer). A/B:
``--baseline-ref COMMIT --rounds N`` runs every system from that commit's tree (``git archive``
into a temporary directory) and from this checkout, alternating A, B, A, B... in one run, and
reports each round's p50 beside its load average (the machine is shared: compare within a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIFROST = [sys.executable, "-m", "app.cli"]
WORKSPACE_FILE = '''"""The workflows of bench/scale.py."""

import asyncio

from bifrost import workflow


@workflow
async def noop() -> dict:
    """Returns at once."""
    return {"ok": True}


@workflow
async def io_wait(seconds: float = 0.5) -> float:
    """Waits like a call to a remote API."""
    await asyncio.sleep(seconds)
    return seconds
'''
TARGETS = {"io_runs_per_s_2_nodes_min": 50, "noop_p50_ratio_to_embedded_max": 3.0}


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    """1/5/15-minute load averages: the machine is shared, every figure carries its own."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----- databases -------------------------------------------------------------------------------------
def _admin_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def create_database(server_url: str, log_statements: bool = False) -> str:
    import asyncpg

    name = f"bifrost_scale_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        connection = await asyncpg.connect(_admin_dsn(server_url))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
            if log_statements:  # counted by count_statements (the server's log must be readable here)
                await connection.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
        finally:
            await connection.close()

    asyncio.run(create())
    base = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def drop_database(server_url: str, url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]

    async def drop() -> None:
        connection = await asyncpg.connect(_admin_dsn(server_url))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def batch_rate(database_url: str, ids: list[str]) -> dict[str, Any]:
    """Runs/s of ``ids`` from the database: first created to last completed, and their statuses."""
    from sqlalchemy import bindparam, text

    from app.db import create_engine

    async def read() -> dict[str, Any]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                statement = text(
                    "SELECT status, created_at, completed_at, node FROM execution WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True))
                rows = (await connection.execute(statement, {"ids": ids})).all()
        finally:
            await engine.dispose()
        statuses: dict[str, int] = {}
        nodes: dict[str, int] = {}
        for row in rows:
            statuses[row[0]] = statuses.get(row[0], 0) + 1
            nodes[row[3] or "embedded"] = nodes.get(row[3] or "embedded", 0) + 1

        def as_time(value: Any) -> float:
            if isinstance(value, str):  # SQLite keeps UTC date-times as text
                value = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return float(value.timestamp())

        start = min(as_time(r[1]) for r in rows)
        end = max(as_time(r[2]) for r in rows if r[2] is not None)
        return {
            "runs": len(rows),
            "seconds": round(end - start, 3),
            "runs_per_s": round(len(rows) / (end - start), 1),
            "statuses": statuses,
            "by_node": nodes,
        }

    return asyncio.run(read())


# ----- processes ---------------------------------------------------------------------------------------
class System:
    """One server (and its nodes) on its own home, workspace and database."""

    def __init__(self, name: str, root: Path, database_url: str, nodes: int, code: Path = ROOT) -> None:
        self.name = name
        self.code = code
        self.root = root / name
        self.workspace = self.root / "workspace"
        self.workspace.mkdir(parents=True)
        (self.workspace / "scale_bench.py").write_text(WORKSPACE_FILE)
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
        self.env.update(
            BIFROST_HOME=str(self.root / "home"),
            BIFROST_WORKSPACE=str(self.workspace),
            BIFROST_DATABASE_URL=database_url,
            BIFROST_PORT=str(self.port),
            BIFROST_PUBLIC_URL=self.url,
            BIFROST_SCHEDULER_ENABLED="false",
            BIFROST_WATCH_WORKSPACE="false",
            BIFROST_SECRET_KEY="t6VdQ3X3mJ8mW6ZL0yqfY3QkZp8wJbq2m0m5hF4e9tA=",
        )
        if nodes:
            self.env["BIFROST_QUEUE"] = "postgres"
        # The code to run (this checkout, or a baseline commit's tree): first on the path, run from there.
        self.env["PYTHONPATH"] = str(code)
        self.node_count = nodes
        self.trace_prefix: Path | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.key = ""

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*BIFROST, *args], env=self.env, capture_output=True, text=True, timeout=300, cwd=self.code
        )
        if done.returncode:
            raise RuntimeError(done.stderr)
        return done.stdout

    def start(self) -> None:
        import httpx

        self.cli("init")
        self.key = self.cli("api-key", "bench").strip().splitlines()[-1]
        out = open(self.root / "server.log", "ab")
        self.processes.append(
            subprocess.Popen([*BIFROST, "serve"], env=self.env, stdout=out, stderr=out, cwd=self.code)
        )
        for n in range(self.node_count):
            node_env = {**self.env, "BIFROST_HOME": str(self.root / f"node{n}"), "BIFROST_NODE_NAME": f"node{n}"}
            node_log = open(self.root / f"node{n}.log", "ab")
            self.processes.append(
                subprocess.Popen([*BIFROST, "worker"], env=node_env, stdout=node_log, stderr=node_log, cwd=self.code)
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200 and self._nodes_ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def _nodes_ready(self) -> bool:
        return all(
            "worker node" in (self.root / f"node{n}.log").read_text(errors="replace") for n in range(self.node_count)
        )

    def node_concurrency(self) -> list[int]:
        found = []
        for n in range(self.node_count):
            for line in (self.root / f"node{n}.log").read_text(errors="replace").splitlines():
                if "concurrent runs" in line:
                    found.append(int(line.split(":", 1)[1].split()[0]))
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the server, each node (with their worker processes) and this
        system's Postgres backends (found by database name): a figure the machine's load does not inflate."""
        import psutil

        def tree(pid: int) -> float:
            try:
                root = psutil.Process(pid)
                found = [root, *root.children(recursive=True)]
            except psutil.Error:
                return 0.0
            total = 0.0
            for process in found:
                try:
                    times = process.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            return total

        names = ["server", *(f"node{n}" for n in range(self.node_count))]
        used = {name: tree(process.pid) for name, process in zip(names, self.processes, strict=True)}
        if self.node_count:
            database = self.database_url.rsplit("/", 1)[1]
            backends = 0.0
            for process in psutil.process_iter(["cmdline"]):
                try:
                    if f" {database} " in " ".join(process.info["cmdline"] or ()) + " ":
                        times = process.cpu_times()
                        backends += times.user + times.system
                except psutil.Error:
                    pass
            used["postgres"] = backends
        return used

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


async def latency(system: System, calls: int, log_file: Path | None = None) -> dict[str, Any]:
    import httpx

    offset = 0
    cpu_before: dict[str, float] = {}
    calls_at: dict[str, tuple[float, float]] = {}

    times: list[float] = []
    headers = {"Authorization": f"Bearer {system.key}"}
    async with httpx.AsyncClient(base_url=system.url, headers=headers, timeout=60) as client:
        for n in range(calls + 20):
            sent, started = time.time(), time.perf_counter()
            response = await client.post("/api/workflows/noop/execute?wait=true", json={"params": {}})
            elapsed, answered = time.perf_counter() - started, time.time()
            assert response.status_code == 200 and response.json()["status"] == "Completed", response.text
            if n >= 20:  # the first calls warm connections and caches
                times.append(elapsed * 1000)
                calls_at[response.json()["execution_id"]] = (sent, answered)
            elif n == 19:
                cpu_before = system.cpu_seconds()
                if log_file is not None:
                    offset = await asyncio.to_thread(os.path.getsize, log_file)
    cpu_after = system.cpu_seconds()
    times.sort()
    found: dict[str, Any] = {
        "calls": calls,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * len(times))], 2),
        "cpu_ms_per_call": {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / calls, 2) for k in cpu_after},
    }
    if system.trace_prefix is not None:
        await asyncio.sleep(0.5)  # the last lines written
        found["hops_p50_ms"] = trace_hops(system.trace_prefix, calls_at)
    if log_file is not None:
        await asyncio.sleep(1.0)  # the last runs' finish, heartbeats aside
        found["statements"] = count_statements(log_file, offset, system.database_url.rsplit("/", 1)[1], calls)
    return found


HOPS = (
    ("sent", "committed", "client sends -> submit committed (HTTP, auth, INSERT + durable commit)"),
    ("committed", "take", "submit committed -> node's TAKE sent (job NOTIFY, wake-up)"),
    ("take", "taken", "TAKE (fetch + Running mark + context, durable commit)"),
    ("taken", "dispatched", "hand-over to the runner"),
    ("dispatched", "result", "worker runs the no-op and answers"),
    ("result", "finished", "FINISH answered (outcome + end NOTIFY, one statement)"),
    ("result", "done", "worker's answer -> end NOTIFY at the server"),
    ("done", "answered", "end NOTIFY at the server -> client has the answer"),
    ("committed", "wait", "(server: submit committed -> wait begins)"),
)


def trace_hops(prefix: Path, calls: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Median milliseconds of each hop of the runs timed by ``BIFROST_QUEUE_TRACE`` (app/engine/queue_trace.py).

    ``calls`` maps each run to when the bench sent its call and had the answer (``time.time()``: every
    process is on this machine). Hops overlap where the work does (a NOTIFY reaches the server
    before the node has FINISH's answer).
    """
    stages: dict[str, dict[str, float]] = {}
    for path in prefix.parent.glob(prefix.name + ".*"):
        for line in path.read_text().splitlines():
            execution_id, stage, at = line.split()
            stages.setdefault(execution_id, {})[stage] = float(at)
    hops: dict[str, list[float]] = {label: [] for _, _, label in HOPS}
    for execution_id, (sent, answered) in calls.items():
        seen = {**stages.get(execution_id, {}), "sent": sent, "answered": answered}
        if not all(stage in seen for pair in HOPS for stage in pair[:2]):
            continue
        for start, end, label in HOPS:
            hops[label].append((seen[end] - seen[start]) * 1000)
    runs = len(hops[HOPS[0][2]])
    return {"runs": runs, **{k: round(statistics.median(v), 2) for k, v in hops.items() if v}}


def count_statements(log_file: Path, offset: int, database: str, calls: int) -> dict[str, Any]:
    """Statements Postgres logged for ``database`` (``log_statement=all``) from ``offset`` on, per call.

    Counts every executed statement (simple ``statement:`` and extended ``execute``), by its first
    words, so that a before/after says which went away.
    """
    with log_file.open("rb") as stream:
        stream.seek(offset)
        lines = stream.read().decode(errors="replace").splitlines()
    kinds: dict[str, int] = {}
    total = 0
    for index, line in enumerate(lines):
        if f"@{database} LOG:" not in line:
            continue
        text = line.split(" LOG:  ", 1)[1]
        if text.endswith(": ") or text.endswith(":"):  # a statement written over several lines: its first one
            following = (line.strip() for line in lines[index + 1 : index + 4])
            text += " " + next((line for line in following if line), "")
        if text.startswith("statement: "):
            text = text[len("statement: ") :]
        elif text.startswith("execute "):
            text = text.split(": ", 1)[1] if ": " in text else text
        else:
            continue
        words = " ".join(text.split()[:6])[:70]
        kinds[words] = kinds.get(words, 0) + 1
        total += 1
    per_call = {k: round(v / calls, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v / calls >= 0.05}
    return {"per_call": round(total / calls, 2), "by_kind_per_call": per_call}


async def submit(system: System, workflow: str, runs: int, clients: int = 16) -> list[str]:
    import httpx

    ids: list[str] = []
    headers = {"Authorization": f"Bearer {system.key}"}
    remaining = iter(range(runs))
    async with httpx.AsyncClient(base_url=system.url, headers=headers, timeout=60) as client:

        async def one_client() -> None:
            for _ in remaining:
                response = await client.post(f"/api/workflows/{workflow}/execute", json={"params": {}})
                assert response.status_code == 202, response.text
                ids.append(response.json()["execution_id"])

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return ids


def wait_all_ended(system: System, ids: list[str], timeout: float) -> None:
    from sqlalchemy import bindparam, text

    from app.db import create_engine

    async def ended() -> int:
        engine = create_engine(system.database_url)
        try:
            async with engine.connect() as connection:
                statement = text(
                    "SELECT count(*) FROM execution WHERE id IN :ids AND status IN ('Completed','Failed','Cancelled')"
                ).bindparams(bindparam("ids", expanding=True))
                return int((await connection.execute(statement, {"ids": ids})).scalar_one())
        finally:
            await engine.dispose()

    deadline = time.monotonic() + timeout
    while asyncio.run(ended()) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system.name}: runs did not end within {timeout} s")
        time.sleep(0.5)


def measure(system: System, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"nodes": system.node_count, "node_concurrency": system.node_concurrency()}
    log_file = Path(args.statements_log) if args.statements_log and system.node_count else None
    found = asyncio.run(latency(system, args.calls, log_file))
    result["noop_latency"] = {**found, "load_average": load_average()}
    log(f"{system.name} noop p50: {result['noop_latency']['p50_ms']} ms (load {load_average()[0]})")
    if args.phases == "latency":
        return result
    for workflow, key, runs in (("noop", "noop_throughput", args.runs), ("io_wait", "io_throughput", args.io_runs)):
        ids = asyncio.run(submit(system, workflow, runs))
        wait_all_ended(system, ids, timeout=600)
        result[key] = {**batch_rate(system.database_url, ids), "load_average": load_average()}
        log(f"{system.name} {key}: {result[key]['runs_per_s']} runs/s")
    return result


def run_system(name: str, root: Path, args: argparse.Namespace, code: Path = ROOT) -> dict[str, Any]:
    """Start ``name`` on a fresh database from the code at ``code``, measure it, stop it, drop its database."""
    nodes = 0 if name == "embedded" else int(name.split("_")[1])
    url = f"sqlite+aiosqlite:///{root / name / 'home' / 'bifrost.db'}" if not nodes else None
    url = url or create_database(args.postgres_url, bool(args.statements_log))
    system = System(name, root, url, nodes, code)
    if args.trace and nodes:
        system.trace_prefix = system.root / "trace"
        system.env["BIFROST_QUEUE_TRACE"] = str(system.trace_prefix)
    log(f"starting {name} from {code}")
    try:
        system.start()
        return measure(system, args)
    finally:
        system.stop()
        if nodes:
            drop_database(args.postgres_url, url)
        shutil.rmtree(root / name, ignore_errors=True)


def baseline_tree(ref: str, root: Path) -> Path:
    """The tree of commit ``ref`` of this repository, unpacked under ``root`` (for A/B runs)."""
    tree = root / "baseline-code"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=os.environ.get("BIFROST_TEST_POSTGRES_URL"), help="Postgres server")
    parser.add_argument("--systems", default="embedded,nodes_1,nodes_2", help="which systems (comma-separated)")
    parser.add_argument("--calls", type=int, default=200, help="sequential wait=true calls for the p50 (default 200)")
    parser.add_argument("--runs", type=int, default=1000, help="no-op runs of the throughput phase (default 1000)")
    parser.add_argument("--io-runs", type=int, default=600, help="I/O-bound runs of the throughput phase (default 600)")
    parser.add_argument("--phases", choices=("all", "latency"), default="all", help="latency: the p50 only")
    parser.add_argument("--baseline-ref", help="A/B: also run every system from this commit, alternating")
    parser.add_argument(
        "--statements-log",
        help="count statements per no-op run on Postgres: log_statement=all on the bench databases, read from this "
        "Postgres log file (e.g. /var/log/postgresql/postgresql-15-main.log; figures then include the logging cost)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="time each hop of the node systems' no-op runs (BIFROST_QUEUE_TRACE)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="A/B rounds (with --baseline-ref)")
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if any(s.startswith("nodes") for s in systems) and not args.postgres_url:
        parser.error("the node systems need --postgres-url or BIFROST_TEST_POSTGRES_URL")
    root = Path(tempfile.mkdtemp(prefix="bifrost-scale-"))
    report: dict[str, Any] = {
        "bench": "scale",
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "load_average_start": load_average(),
        "systems": {},
    }
    try:
        if args.baseline_ref:
            baseline = baseline_tree(args.baseline_ref, root)
            report["baseline_ref"] = args.baseline_ref
            rounds: dict[str, dict[str, list[Any]]] = {name: {"A": [], "B": []} for name in systems}
            for _ in range(args.rounds):
                for name in systems:
                    for side, code in (("A", baseline), ("B", ROOT)):
                        found = run_system(name, root, args, code)["noop_latency"]
                        rounds[name][side].append([found["p50_ms"], found["load_average"][0]])
                        report.setdefault("cpu_ms_per_call", {}).setdefault(name, {}).setdefault(side, []).append(
                            found["cpu_ms_per_call"]
                        )
                        if "hops_p50_ms" in found:
                            report.setdefault("hops", {}).setdefault(name, {}).setdefault(side, []).append(
                                found["hops_p50_ms"]
                            )
                        if "statements" in found:
                            report.setdefault("statements", {}).setdefault(name, {})[side] = found["statements"]
            for name, sides in rounds.items():
                report["systems"][name] = {
                    "ab_rounds_p50_ms_and_load": sides,
                    "median_p50_ms": {side: statistics.median(p for p, _ in runs) for side, runs in sides.items()},
                }
        else:
            for name in systems:
                report["systems"][name] = run_system(name, root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    found = report["systems"]
    if not args.baseline_ref and "embedded" in found:
        for nodes in ("nodes_1", "nodes_2"):
            if nodes in found:
                ratio = found[nodes]["noop_latency"]["p50_ms"] / found["embedded"]["noop_latency"]["p50_ms"]
                report[f"noop_p50_ratio_{nodes}_to_embedded"] = round(ratio, 2)
    report["load_average_end"] = load_average()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
