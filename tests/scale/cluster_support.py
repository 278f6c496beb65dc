"""A cluster on loopback: ``bifrost serve`` twice and ``bifrost worker`` twice as real processes on one Postgres.

Every process shares the workspace folder, the secret key and a fresh database (the layout of
docs/deploy.md, on one machine). Nodes beat their heartbeat every half second and count as lost
after three, so a test sees a dead node within seconds.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, LiteralString

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from app.engine.queue_schema import conninfo
from tests.platform.faults_support import BIFROST, START_TIMEOUT, Serve, database, wait_until

# `record` appends the run's id to a file of its worker process (then sleeps `seconds`): across all
# files each id must appear exactly once, whatever the database says. `linger` runs until cancelled or its time is up;
# `chatty` logs a line at a time; `burst` logs its lines at once, says so (file `logged`), then waits
# for file `gate`; `token_then_wait` writes its SDK token to `path`, then waits for `gate`.
CLUSTER_WORKFLOWS = textwrap.dedent(
    """
    import asyncio
    import logging
    import os

    from bifrost import context, workflow

    log = logging.getLogger(__name__)


    @workflow
    async def record(folder: str, seconds: float = 0.0) -> int:
        with open(os.path.join(folder, f"{os.getpid()}.runs"), "a") as runs:
            runs.write(context.execution_id + "\\n")
        await asyncio.sleep(seconds)
        return os.getpid()


    @workflow(timeout_seconds=120)
    async def linger(seconds: float = 60.0) -> float:
        print("lingering", flush=True)
        await asyncio.sleep(seconds)
        return seconds


    @workflow(timeout_seconds=1)
    async def overrun() -> None:
        await asyncio.sleep(60)


    @workflow(timeout_seconds=120)
    async def burst(lines: int, logged: str, gate: str) -> int:
        for n in range(lines):
            log.info("line %d", n)
        open(logged, "w").close()
        while not os.path.exists(gate):
            await asyncio.sleep(0.02)
        return lines


    @workflow(timeout_seconds=120)
    async def token_then_wait(path: str, gate: str) -> str:
        from bifrost._context import current_connection

        connection = current_connection()
        with open(path + ".part", "w") as out:
            out.write(connection.token if connection else "")
        os.rename(path + ".part", path)
        while not os.path.exists(gate):
            await asyncio.sleep(0.02)
        return "done"


    @workflow(timeout_seconds=120)
    async def chatty(lines: int = 400, every: float = 0.05, delay: float = 0.0) -> int:
        await asyncio.sleep(delay)
        for n in range(lines):
            log.info("line %d", n)
            await asyncio.sleep(every)
        return lines
    """
)

SECRET_KEY = "t6VdQ3X3mJ8mW6ZL0yqfY3QkZp8wJbq2m0m5hF4e9tA="  # one Fernet key for every process
CLUSTER_SETTINGS = {
    "queue": "postgres",
    "secret_key": SECRET_KEY,
    "node_heartbeat_seconds": "0.5",
    "node_lost_seconds": "3",
    "shutdown_grace_seconds": "2",
    "watch_workspace": "false",
}


class Node:
    """``bifrost worker`` in a child process, sharing the servers' workspace and database."""

    def __init__(self, root: Path, name: str, env: dict[str, str], workers: int) -> None:
        self.name = name
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = {**env, "BIFROST_HOME": str(self.root / "home"), "BIFROST_NODE_NAME": name}
        self.env["BIFROST_WORKERS"] = str(workers)
        self.log_path = self.root / "node.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> Node:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*BIFROST, "worker"], env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    def wait_ready(self) -> Node:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"bifrost worker {self.name} exited:\n{self.log_tail()}")
            started = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
            if f"worker node {self.name}:" in started:
                return self
            time.sleep(0.05)
        pytest.fail(f"bifrost worker {self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Cluster:
    """Two servers and two nodes on one fresh Postgres database."""

    def __init__(self, root: Path, database_url: str, node_workers: int = 3) -> None:
        self.root = root
        self.database_url = database_url
        self.workspace = root / "workspace"
        self.workspace.mkdir(parents=True)
        (self.workspace / "cluster.py").write_text(CLUSTER_WORKFLOWS)
        self.runs_folder = root / "runs"
        self.runs_folder.mkdir()
        settings = {**CLUSTER_SETTINGS, "workspace": str(self.workspace)}
        self.a = Serve(root / "server-a", database_url, workers=1, **settings)
        self.b = Serve(root / "server-b", database_url, workers=1, **settings)
        # Workflows reach the servers through BIFROST_URL = the public URL (a proxy in production).
        node_env = {**self.a.env, "BIFROST_PUBLIC_URL": self.a.url}
        self.node_a = Node(root, "node-a", node_env, node_workers)
        self.node_b = Node(root, "node-b", {**node_env, "BIFROST_PUBLIC_URL": self.b.url}, node_workers)
        self._database: psycopg.Connection[Any] | None = None  # the tests' own connection (rows, row)

    def init(self) -> Cluster:
        """``bifrost init``: migrate the database and make the API key (stored in the shared database)."""
        self.a.init()
        self.b.key = self.a.key
        return self

    def start_with(self, *nodes: Node) -> Cluster:
        """Start both servers and ``nodes`` on the migrated database (first start, or again after a stop).

        The nodes start alongside the servers: a node needs only the migrated database to start (its
        workflows reach a server, not its start-up), so the processes' start-ups overlap.
        """
        for node in nodes:
            node.start()
        self.start_servers()
        for node in nodes:
            node.wait_ready()
        return self

    def start_servers(self) -> None:
        # Together: the database is migrated (init), and the queue schema is applied under a lock.
        for server in (self.a, self.b):
            server.launch()
        for server in (self.a, self.b):
            server.wait_ready()

    def stop(self) -> None:
        """Stop every process (SIGTERM, each one's graceful stop), all four at once, and close the tests' connection."""

        def stop_one(process: Node | Serve) -> None:
            with contextlib.suppress(Exception):
                process.stop()

        with ThreadPoolExecutor(max_workers=4) as threads:
            list(threads.map(stop_one, (self.node_a, self.node_b, self.a, self.b)))
        if self._database is not None:
            self._database.close()
            self._database = None

    def _query(self, statement: LiteralString, *params: object) -> list[dict[str, Any]]:
        # One connection for the whole test (autocommit: each read sees what is committed now), not a
        # new engine and event loop per poll: the waits below poll every 50 ms.
        if self._database is None or self._database.closed:
            self._database = psycopg.connect(conninfo(self.database_url), autocommit=True, row_factory=dict_row)
        with self._database.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    def rows(self) -> dict[str, dict[str, Any]]:
        """``{execution id: {status, node, error_type, error_message}}`` straight from the database."""
        found = self._query("SELECT id, status, node, error_type, error_message FROM execution")
        return {row["id"]: row for row in found}

    def row(self, execution_id: str) -> dict[str, Any]:
        """The :meth:`rows` entry of one execution (empty when it is not stored)."""
        found = self._query(
            "SELECT id, status, node, error_type, error_message FROM execution WHERE id = %s", execution_id
        )
        return found[0] if found else {}

    def recorded_runs(self, folder: Path | None = None) -> list[str]:
        """Every execution id the ``record`` workflow wrote into ``folder`` (default ``runs_folder``), once per run."""
        runs: list[str] = []
        for path in (folder or self.runs_folder).glob("*.runs"):
            runs.extend(path.read_text().split())
        return runs

    def wait_status(self, execution_id: str, statuses: set[str], timeout: float = 60.0) -> dict[str, Any]:
        """The execution's row once its status is one of ``statuses``; fails after ``timeout`` seconds."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.clear()
            found.update(self.row(execution_id))
            return found.get("status") in statuses

        wait_until(reached, timeout, f"execution {execution_id} to reach {statuses}")
        return found


@contextlib.contextmanager
def cluster(tmp_path: Path, *, nodes: Sequence[str] = ("a", "b"), node_workers: int = 3) -> Iterator[Cluster]:
    """A started cluster on a fresh database (dropped afterwards); skipped without Postgres.

    Args:
        tmp_path: The cluster's folder (workspace, homes, logs, ``runs``).
        nodes: Which nodes start with the servers: ``("a", "b")``, ``("a",)``, or ``()`` for none.
        node_workers: Concurrent runs of each node.
    """
    with database("postgres", tmp_path) as url:
        running = Cluster(tmp_path, url, node_workers=node_workers)
        try:
            yield running.init().start_with(*(running.node_a if name == "a" else running.node_b for name in nodes))
        finally:
            running.stop()


def client(server: Serve) -> httpx.Client:
    """An API client of ``server`` (the admin's key)."""
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
