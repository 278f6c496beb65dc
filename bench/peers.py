#!/usr/bin/env python
"""Side by side with Celery: the same trivial job through this platform and through Celery, alternating.

Run ``.venv/bin/python bench/peers.py`` (needs the optional extra ``bench``: ``pip install -e '.[bench]'``).
Prints ONE JSON object on stdout; progress goes to stderr. See ``docs/performance.md`` ("Against Celery").

Systems (all started once, then measured in short alternating blocks):

* **celery**: Celery with 2 prefork workers on the machine's Redis (``--redis``, default
  ``redis://127.0.0.1:6379/15``), a dedicated queue; the client calls ``trivial.delay().get()``
  (Celery's own client, as its users run it). Redis also stores the result: nothing durable.
* **sqlite** / **postgres**: ``bifrost serve`` with 2 warm workers on a fresh SQLite file, and on a
  fresh Postgres database created on ``--postgres-url`` (default ``BIFROST_TEST_POSTGRES_URL``) and
  dropped at the end. The client calls ``POST /api/workflows/trivial/execute?wait=true`` with an API
  key; every run is recorded (status, result, logs) and the JSON counts the stored rows afterwards.
* **sqlite-base** / **postgres-base** (with ``--baseline TREE``): the same, served from another checkout
  of this project (``git worktree add /tmp/base <commit>``), measured in the same rounds: an A/B of a
  change on a shared, noisy machine.
* **floor**: a bare Litestar app on uvicorn (same uvicorn options as ``bifrost serve``) answering the
  same POST with the same small dict: what HTTP alone costs on this machine.

On Postgres each block also gives Postgres's own CPU per run (``pg_backend_cpu_ms_per_run``: the backends of
that system's database; ``pg_all_cpu_ms_per_run``: every Postgres process, other users of the server included),
and ``stored`` gives what Postgres counted per table (rows inserted, updated, HOT-updated, scans, rows read) and
its sessions and commits. ``--history N`` gives every Postgres database N finished runs (and statistics) before it
serves: a platform in use rather than a fresh install. ``--postgres-sql`` runs statements on this tree's Postgres database before it serves
(e.g. ``DROP INDEX``): with ``--baseline`` on the same commit, an A/B of a schema change in one run.

Each block is one load-generator process (``--load``): 1 client one call at a time (p50), then
``--clients`` (16) concurrent clients in a closed loop (runs/s). HTTP clients use aiohttp with keep-alive,
one connection per client; Celery's clients are threads in one process. Each block records the load average.
Without Redis, Celery or Postgres the missing system is skipped with the reason in ``skipped``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
RESULT = {"ok": True, "n": 1}
WORKSPACE_FILE = '''"""The trivial job of bench/peers.py."""

from bifrost import workflow


@workflow
async def trivial() -> dict:
    """Returns a small dict."""
    return {"ok": True, "n": 1}
'''
# --history: finished runs of another workflow over 60 days (97 % Completed), as a platform in use has.
HISTORY_SQL = """
INSERT INTO execution (id, workflow_id, workflow_name, kind, organization_id, executed_by, executed_by_name, trigger,
                       is_function_key, status, input_data, result, user_error, timeout_seconds, created_at,
                       started_at, completed_at, duration_ms)
SELECT gen_random_uuid()::text, 'history', 'history', 'workflow', NULL, 'history', 'history@peers.local', 'api',
       false, CASE WHEN g % 33 = 0 THEN 'Failed' ELSE 'Completed' END, '{{}}', '{{"ok": true}}', false, 1800,
       now() - g * interval '60 days' / {runs}, now() - g * interval '60 days' / {runs},
       now() - g * interval '60 days' / {runs}, 1
  FROM generate_series(1, {runs}) AS g
"""
# The targets (docs/performance.md, "Against Celery").
TARGETS = {"sqlite_p50_ms_max": 1.5, "postgres_p50_ms_max": 2.5}


def log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    """1/5/15-minute load averages: other work on the 2-core machine skews every figure."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted values."""
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summarize(latencies: list[float], elapsed: float, failures: list[str], cpu: float) -> dict[str, Any]:
    """Runs/s and percentiles (ms) of one measured phase."""
    values = sorted(v * 1000 for v in latencies)
    return {
        "runs": len(values),
        "runs_per_s": round(len(values) / elapsed, 1) if elapsed else None,
        "p50_ms": round(quantile(values, 0.5), 3),
        "p95_ms": round(quantile(values, 0.95), 3),
        "p99_ms": round(quantile(values, 0.99), 3),
        "client_cpu_ms_per_run": round(cpu * 1000 / max(1, len(values)), 3),
        "failures": len(failures),
        **({"first_failure": failures[0]} if failures else {}),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ===== Celery ===========================================================================================
def make_celery(redis_url: str, queue: str) -> Any:
    """The Celery app of the benchmark: Redis as broker and result backend, one dedicated queue."""
    from celery import Celery

    app = Celery("peers", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=60,  # the results of a run of the benchmark do not outlive it in Redis by much
    )

    @app.task(name="peers.trivial")
    def trivial() -> dict[str, Any]:
        return dict(RESULT)

    return app


# `celery -A peers:celery_app worker` imports this module with the settings in its environment.
celery_app = (
    make_celery(os.environ["PEERS_REDIS"], os.environ["PEERS_QUEUE"]) if os.environ.get("PEERS_CELERY") else None
)


def redis_reason(redis_url: str) -> str | None:
    """Why Celery cannot be measured here, or None."""
    try:
        import celery  # noqa: F401
        import redis
    except ImportError as exc:
        return f"celery[redis] is not installed ({exc.name}): pip install -e '.[bench]'"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"no Redis at {redis_url}: {exc}"
    return None


def forget_queue(redis_url: str, queue: str) -> None:
    """Drop what Kombu keeps in Redis for the benchmark's own queue (results expire by themselves)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


def celery_load(args: argparse.Namespace) -> dict[str, Any]:
    """Threads calling ``trivial.delay().get()`` in a closed loop (Celery's own client)."""
    app = make_celery(args.redis, args.queue)
    task = app.tasks["peers.trivial"]

    def phase(seconds: float) -> tuple[list[float], list[str], float]:
        latencies: list[float] = []
        failures: list[str] = []
        start = time.perf_counter()
        deadline = start + seconds

        def client() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    value = task.delay().get(timeout=30)
                except Exception as exc:
                    failures.append(repr(exc)[:200])
                    continue
                latencies.append(time.perf_counter() - t0)
                if value != RESULT:
                    failures.append(f"unexpected result {value!r}")

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, failures, time.perf_counter() - start

    phase(args.warmup)
    cpu0 = time.process_time()
    latencies, failures, elapsed = phase(args.seconds)
    return summarize(latencies, elapsed, failures, time.process_time() - cpu0)


# ===== HTTP (platform and floor) ========================================================================
async def http_load(args: argparse.Namespace) -> dict[str, Any]:
    """aiohttp clients with keep-alive (one connection each) posting ``{"params": {}}`` in a closed loop."""
    import aiohttp

    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    connector = aiohttp.TCPConnector(limit=args.clients, force_close=False)
    body = json.dumps({"params": {}}).encode()
    headers["Content-Type"] = "application/json"
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def phase(seconds: float) -> tuple[list[float], list[str], float]:
            latencies: list[float] = []
            failures: list[str] = []
            start = time.perf_counter()
            deadline = start + seconds

            async def client() -> None:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    async with session.post(args.url, data=body) as response:
                        payload = await response.read()
                    latencies.append(time.perf_counter() - t0)
                    if response.status != 200:
                        failures.append(f"{response.status} {payload[:200]!r}")
                        continue
                    answer = json.loads(payload)
                    # The platform answers the whole execution; the floor the dict itself.
                    if answer != RESULT and (answer.get("status") != "Completed" or answer.get("result") != RESULT):
                        failures.append(f"unexpected answer {payload[:200]!r}")

            await asyncio.gather(*(client() for _ in range(args.clients)))
            return latencies, failures, time.perf_counter() - start

        warm, warm_failures, _ = await phase(args.warmup)
        cpu0 = time.process_time()
        latencies, failures, elapsed = await phase(args.seconds)
        summary = summarize(latencies, elapsed, failures, time.process_time() - cpu0)
        # Every answered call, warm-up included: what the platform must have stored.
        summary["answered_incl_warmup"] = len(warm) - len(warm_failures) + len(latencies) - len(failures)
        return summary


def floor_app() -> Any:
    """A bare Litestar app answering the execute call's shape with the small dict (no auth, no database)."""
    from litestar import Litestar, post

    @post("/run", status_code=200)
    async def run(data: dict[str, Any]) -> dict[str, Any]:
        return dict(RESULT)

    return Litestar(route_handlers=[run])


def floor_main(port: int) -> None:
    import uvicorn

    # The options `bifrost serve` gives uvicorn (app/cli.py), so the floor is the same HTTP stack.
    uvicorn.run(floor_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, proxy_headers=False)


# ===== the platform =====================================================================================
async def seed(database_url: str) -> str:
    """Migrate a fresh database and create an organization, a user and that user's API key."""
    from app.db import create_engine, session_factory, transaction, upgrade_database_async
    from app.services.identity.auth import ApiKeyService, AuthService
    from app.services.identity.organizations import OrganizationService
    from app.services.identity.users import UserService

    await upgrade_database_async(database_url)
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            users, auth = UserService(session), AuthService(session)
            admin = await users.create(None, "admin@peers.local", "Admin", is_superuser=True)
            admin_actor = await auth.actor_for_user(admin.id)
            org = await OrganizationService(session).create(admin_actor, "Peers Org", domain="peers.local")
            user = await users.create(admin_actor, "user@peers.local", "Peers User", org_id=org.id)
            _, key = await ApiKeyService(session).create(await auth.actor_for_user(user.id), "peers bench")
    finally:
        await engine.dispose()
    return key


class Platform:
    """``bifrost serve`` with 2 workers on one database, in its own folder."""

    def __init__(self, name: str, folder: Path, database_url: str, workers: int, tree: Path | None = None) -> None:
        self.name, self.folder, self.database_url, self.workers = name, folder, database_url, workers
        self.tree = tree  # serve this checkout's code (PYTHONPATH) instead of the installed one
        self.runs_ahead: int | None = None  # `bifrost serve --runs-ahead` (this tree only)
        self.setup_sql: list[str] = []  # `--postgres-sql` (this tree's Postgres only)
        self.history = 0  # `--history`: finished runs written before it serves (Postgres)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    @property
    def dsn(self) -> str:
        """The Postgres database as asyncpg takes it (``postgresql://...``)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/workflows/trivial/execute?wait=true"

    def start(self) -> None:
        workspace = self.folder / "workspace"
        workspace.mkdir(parents=True)
        (workspace / "peers_flows.py").write_text(WORKSPACE_FILE)
        code = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.tree or ROOT), os.environ.get("PYTHONPATH", "")])}
        seeded = subprocess.run(
            [sys.executable, str(SCRIPT), "--seed", self.database_url],
            cwd=ROOT, env=code, check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.key = seeded.stdout.strip().splitlines()[-1]
        if self.history and self.database_url.startswith("postgresql"):
            log(f"{self.name}: {self.history} runs of history, then VACUUM ANALYZE")
            asyncio.run(postgres(self.dsn, HISTORY_SQL.format(runs=int(self.history))))
            asyncio.run(postgres(self.dsn, "VACUUM ANALYZE execution"))
        for statement in self.setup_sql:  # --postgres-sql: an experiment on this database, before it serves
            log(f"{self.name}: {statement}")
            asyncio.run(postgres(self.dsn, statement))
        env = {
            **os.environ,
            "BIFROST_HOME": str(self.folder / "home"),
            "BIFROST_WORKSPACE": str(workspace),
            "BIFROST_DATABASE_URL": self.database_url,
        }
        # The code of this checkout (the one this script is in), or of the baseline's: not whichever the
        # environment happens to have installed.
        env["PYTHONPATH"] = os.pathsep.join([str(self.tree or ROOT), env.get("PYTHONPATH", "")])
        if self.tree is None and self.runs_ahead is not None:
            env["BIFROST_RUNS_AHEAD_PER_WORKER"] = str(self.runs_ahead)
        bifrost = Path(sys.executable).parent / "bifrost"
        command = [str(bifrost)] if bifrost.exists() else [sys.executable, "-c", "from app.cli import main; main()"]
        with (self.folder / "serve.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, self.folder / "serve.log")
        # The workspace is scanned after start-up: wait until the job is in the catalogue.
        wait_http(
            f"http://127.0.0.1:{self.port}/api/workflows/trivial",
            self.proc,
            self.folder / "serve.log",
            headers={"Authorization": f"Bearer {self.key}"},
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()

    def stored(self) -> dict[str, int]:
        """Executions of the trivial job in the database, by status (with a result of the right shape)."""
        query = (
            "SELECT status, COUNT(*) FROM execution WHERE workflow_name = 'trivial' "
            "AND result IS NOT NULL GROUP BY status"
        )
        if self.database_url.startswith("sqlite"):
            with sqlite3.connect(self.database_url.split("///", 1)[1]) as connection:
                return dict(connection.execute(query).fetchall())
        rows = asyncio.run(postgres(self.dsn, query))
        return {row[0]: row[1] for row in rows}


async def postgres(dsn: str, statement: str) -> list[Any]:
    """Run one statement on its own connection (create/drop the database, count the stored runs)."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(statement))
    finally:
        await connection.close()


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    logfile: Path | None = None,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it exits first."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text()[-2000:] if logfile else ""
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


# ===== orchestration ====================================================================================
def run_block(system: str, target: dict[str, Any], clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """One load-generator process against one system; its summary with the load average."""
    command = [
        sys.executable, str(SCRIPT), "--load", system, "--clients", str(clients),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup),
    ]  # fmt: skip
    for option in ("url", "key", "redis", "queue"):  # (pid stays here: the server is measured from outside)
        if target.get(option):
            command += [f"--{option}", target[option]]
    load = load_average()[0]
    pid: int | None = target.get("pid")
    cpu0 = process_cpu_seconds(pid) if pid else None
    pg: tuple[str, str] | None = target.get("pg")
    pg0 = postgres_cpu_seconds(*pg) if pg else None
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    block = {"system": system, "clients": clients, "load_avg_1m": load, **json.loads(done.stdout)}
    answered = block.get("answered_incl_warmup")
    if pid and cpu0 is not None and answered:
        # The server process's own CPU (not its workers') per answered run, warm-up included: steadier than
        # wall-clock figures on a shared machine.
        used = process_cpu_seconds(pid) - cpu0
        block["server_cpu_ms_per_run"] = round(used * 1000 / answered, 3)
    if pg and pg0 is not None and answered:
        # Postgres's own CPU per run: the backends of this system's database, and every Postgres process (WAL
        # writer, checkpointer... but also other users of the same Postgres server: an upper bound).
        backends, everything = postgres_cpu_seconds(*pg)
        # Backends that exited during the block are missing (a lower bound); those that started count whole.
        used = sum(cpu - pg0[0].get(backend, 0.0) for backend, cpu in backends.items())
        block["pg_backend_cpu_ms_per_run"] = round(used * 1000 / answered, 3)
        block["pg_backends_started"] = len(backends.keys() - pg0[0].keys())
        block["pg_all_cpu_ms_per_run"] = round((everything - pg0[1]) * 1000 / answered, 3)
    return block


def postgres_cpu_seconds(admin_dsn: str, database: str) -> tuple[dict[int, float], float]:
    """CPU seconds so far of each backend connected to ``database``, and of all Postgres on this machine.

    The second figure counts every Postgres process, backends that exited included (the postmaster's reaped
    children): the WAL writer and checkpointer too, but also other users of the same server.
    """
    rows = asyncio.run(postgres(admin_dsn, f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"))
    backends: dict[int, float] = {}
    for row in rows:
        with contextlib.suppress(OSError):
            backends[row[0]] = process_cpu_seconds(row[0])
    everything = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    everything += process_cpu_seconds(int(entry.name), children=True)
    return backends, everything


async def postgres_writes(dsn: str) -> dict[str, Any]:
    """What Postgres counted in one database: per table used, rows written and read, scans; sessions, commits."""
    rows = await postgres(
        dsn,
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, "
        "pg_relation_size(relid), pg_indexes_size(relid), (SELECT count(*) FROM pg_index WHERE indrelid = relid) "
        "FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del + coalesce(idx_scan, 0) + seq_scan > 0",
    )
    database = await postgres(
        dsn,
        "SELECT xact_commit, tup_fetched, tup_returned, sessions FROM pg_stat_database "
        "WHERE datname = current_database()",
    )
    names = ("inserted", "updated", "hot_updated", "seq_scans", "seq_rows_read", "index_scans", "index_rows_fetched")
    out: dict[str, Any] = {
        row[0]: {
            **dict(zip(names, row[1:8], strict=True)),
            "table_bytes": row[8],
            "index_bytes": row[9],
            "indexes": row[10],
        }
        for row in rows
    }
    out["transactions"], out["tuples_fetched"], out["tuples_returned"], out["sessions"] = database[0]
    return out


def process_cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``), with its reaped children's."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def ratios(blocks: list[dict[str, Any]], clients: int) -> list[dict[str, Any]]:
    """Per round: the platform's p50 over Celery's (lower is better) and its runs/s over Celery's (higher)."""
    out = []
    for number in sorted({b["round"] for b in blocks}):
        row: dict[str, Any] = {"round": number}
        by = {(b["system"], b["clients"]): b for b in blocks if b["round"] == number}
        celery1, celeryn = by.get(("celery", 1)), by.get(("celery", clients))
        for system in ("sqlite", "sqlite-base", "postgres", "postgres-base", "floor"):
            one, many = by.get((system, 1)), by.get((system, clients))
            if celery1 and one:
                row[f"{system}_p50_over_celery"] = round(one["p50_ms"] / celery1["p50_ms"], 2)
            if celeryn and many:
                row[f"{system}_runs_per_s_over_celery"] = round(many["runs_per_s"] / celeryn["runs_per_s"], 2)
        out.append(row)
    return out


def table(blocks: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """Median over rounds of each system's p50 (1 client) and runs/s (``clients`` clients)."""
    out = {}
    for system in dict.fromkeys(b["system"] for b in blocks):
        ones = [b["p50_ms"] for b in blocks if b["system"] == system and b["clients"] == 1]
        many = [b["runs_per_s"] for b in blocks if b["system"] == system and b["clients"] == clients]
        cpu = [b["server_cpu_ms_per_run"] for b in blocks if b["system"] == system and "server_cpu_ms_per_run" in b]
        pg = [
            b["pg_backend_cpu_ms_per_run"]
            for b in blocks
            if b["system"] == system and b["clients"] == clients and "pg_backend_cpu_ms_per_run" in b
        ]
        out[system] = {
            "p50_ms_one_at_a_time": round(statistics.median(ones), 3) if ones else None,
            f"runs_per_s_{clients}_clients": round(statistics.median(many), 1) if many else None,
            **({"server_cpu_ms_per_run": round(statistics.median(cpu), 3)} if cpu else {}),
            **({f"pg_backend_cpu_ms_per_run_{clients}_clients": round(statistics.median(pg), 3)} if pg else {}),
        }
    return out


def verdicts(summary: dict[str, Any], clients: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rate = f"runs_per_s_{clients}_clients"
    celery = summary.get("celery", {}).get(rate)
    for system in ("sqlite", "postgres", "sqlite-base", "postgres-base"):
        if system not in summary:
            continue
        p50, limit = summary[system]["p50_ms_one_at_a_time"], TARGETS[f"{system.split('-')[0]}_p50_ms_max"]
        out[f"{system}_p50"] = {"measured": p50, "target": f"<= {limit}", "pass": p50 <= limit}
        if celery:
            mine = summary[system][rate]
            out[f"{system}_throughput"] = {"measured": mine, "target": f">= celery {celery}", "pass": mine >= celery}
    return out


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    started = load_average()
    skipped: dict[str, str] = {}
    targets: dict[str, dict[str, Any]] = {}
    processes: list[subprocess.Popen[bytes]] = []
    platforms: list[Platform] = []
    folder = Path(tempfile.mkdtemp(prefix="bifrost-peers-"))
    pg_admin = (args.postgres_url or "").replace("postgresql+asyncpg://", "postgresql://")
    pg_name = f"bench_peers_{os.getpid()}"
    pg_created: list[str] = []
    try:
        wanted = args.systems.split(",")
        if "celery" in wanted:
            reason = redis_reason(args.redis)
            if reason:
                skipped["celery"] = reason
            else:
                env = {**os.environ, "PEERS_CELERY": "1", "PEERS_REDIS": args.redis, "PEERS_QUEUE": args.queue}
                env["PYTHONPATH"] = os.pathsep.join([str(SCRIPT.parent), env.get("PYTHONPATH", "")])
                worker = [sys.executable, "-m", "celery", "-A", "peers:celery_app", "worker", "--pool", "prefork",
                          "--concurrency", str(args.workers), "--loglevel", "WARNING", "--queues", args.queue]  # fmt: skip
                with (folder / "celery.log").open("wb") as out:
                    processes.append(
                        subprocess.Popen(
                            worker, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                        )
                    )
                targets["celery"] = {"redis": args.redis, "queue": args.queue}
        trees: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline:
            trees.append(("-base", Path(args.baseline).resolve()))
        for suffix, tree in trees:
            if "sqlite" in wanted:
                name = f"sqlite{suffix}"
                url = f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
                platforms.append(Platform(name, folder / name, url, args.workers, tree))
            if "postgres" in wanted:
                if not pg_admin:
                    skipped["postgres"] = "no Postgres URL: set BIFROST_TEST_POSTGRES_URL or pass --postgres-url"
                    continue
                database = f"{pg_name}{suffix.replace('-', '_')}"
                asyncio.run(postgres(pg_admin, f'CREATE DATABASE "{database}"'))
                pg_created.append(database)
                url = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{database}"
                platforms.append(Platform(f"postgres{suffix}", folder / f"postgres{suffix}", url, args.workers, tree))
        for platform in platforms:
            platform.runs_ahead = args.runs_ahead
            platform.history = args.history
            if platform.name == "postgres":
                platform.setup_sql = args.postgres_sql or []
            log(f"starting bifrost serve on {platform.name}")
            platform.start()
            assert platform.proc is not None
            targets[platform.name] = {"url": platform.url, "key": platform.key, "pid": platform.proc.pid}
            if platform.database_url.startswith("postgresql"):
                targets[platform.name]["pg"] = (pg_admin, platform.database_url.rsplit("/", 1)[1])
        if "floor" in wanted:
            port = free_port()
            processes.append(subprocess.Popen([sys.executable, str(SCRIPT), "--floor", str(port)], cwd=ROOT))
            wait_http(f"http://127.0.0.1:{port}/schema/openapi.json", processes[-1])
            targets["floor"] = {"url": f"http://127.0.0.1:{port}/run"}
        if "celery" in targets:
            time.sleep(2)  # the worker connects to Redis; the warm-up of the first block absorbs the rest
        order = [s for s in ("celery", "sqlite", "sqlite-base", "postgres", "postgres-base", "floor") if s in targets]
        blocks: list[dict[str, Any]] = []
        for number in range(1, args.rounds + 1):
            for system in order:
                for clients in (1, args.clients):
                    block = run_block(system, targets[system], clients, args)
                    block["round"] = number
                    blocks.append(block)
                    log(
                        f"round {number} {system:8} {clients:2} client(s): p50 {block['p50_ms']:.3f} ms, "
                        f"{block['runs_per_s']} runs/s, server CPU {block.get('server_cpu_ms_per_run', '-')} ms/run, "
                        f"Postgres CPU {block.get('pg_backend_cpu_ms_per_run', '-')} ms/run, "
                        f"load {block['load_avg_1m']}, failures {block['failures']}"
                    )
        stored = {}
        for platform in platforms:
            answered = sum(b["answered_incl_warmup"] for b in blocks if b["system"] == platform.name)
            rows = platform.stored()
            stored[platform.name] = {
                "answered_completed_incl_warmup": answered,
                "stored_with_result": rows,
                "every_answered_run_stored": rows.get("Completed", 0) == answered,
            }
        for platform in platforms:
            if platform.database_url.startswith("postgresql"):
                # Once its server stopped, so its backends have reported their statistics.
                platform.stop()
                time.sleep(1)
                stored[platform.name]["postgres_writes"] = asyncio.run(postgres_writes(platform.dsn))
        summary = table(blocks, args.clients)
        return {
            "benchmark": "peers",
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_avg_start": started,
            "load_avg_end": load_average(),
            "config": {
                "rounds": args.rounds,
                "seconds_per_block": args.seconds,
                "warmup_per_block": args.warmup,
                "clients": args.clients,
                "workers": args.workers,
                "runs_ahead": args.runs_ahead,
                "baseline": args.baseline,
                "history": args.history,
                "http_client": "aiohttp, keep-alive, one connection per client",
                "celery_client": "trivial.delay().get(), one thread per client",
            },
            "skipped": skipped,
            "table": summary,
            "ratios_per_round": ratios(blocks, args.clients),
            "verdicts": verdicts(summary, args.clients),
            "stored": stored,
            "blocks": blocks,
        }
    finally:
        for platform in platforms:
            platform.stop()
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if "celery" in targets:
            forget_queue(args.redis, args.queue)
        for database in pg_created:
            asyncio.run(postgres(pg_admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="celery,sqlite,postgres,floor", help="which systems (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating blocks (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per block (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per block (default 1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the throughput blocks")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each system (default 2)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="Redis for Celery (broker and results)")
    parser.add_argument("--queue", default=f"bench-peers-{os.getpid()}", help=argparse.SUPPRESS)
    parser.add_argument("--postgres-url", default=os.environ.get("BIFROST_TEST_POSTGRES_URL"), help="Postgres server")
    parser.add_argument("--baseline", help="also serve this checkout (e.g. a git worktree of an older commit)")
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="Postgres: write this many finished runs (another workflow) and VACUUM ANALYZE before serving, in every "
        "Postgres database of the run (default 0: a fresh, empty history)",
    )
    parser.add_argument(
        "--postgres-sql",
        action="append",
        help="a statement run on this tree's Postgres database after migration, before it serves (repeatable; "
        "e.g. DROP INDEX ... to measure an index's cost against --baseline)",
    )
    parser.add_argument(
        "--runs-ahead", type=int, help="bifrost serve --runs-ahead for this tree's servers (not the baseline's)"
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(asyncio.run(seed(args.seed)))
    elif args.floor:
        floor_main(args.floor)
    elif args.load == "celery":
        print(json.dumps(celery_load(args)))
    elif args.load:
        try:
            import uvloop
        except ImportError:
            print(json.dumps(asyncio.run(http_load(args))))
        else:
            print(json.dumps(uvloop.run(http_load(args))))
    else:
        print(json.dumps(orchestrate(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
