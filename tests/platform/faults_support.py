"""A real ``bifrost serve`` process for fault injection: start, SIGKILL, SIGTERM, restart, inspect.

Each test gets its own home, workspace and database (SQLite file, or a fresh Postgres database when
``BIFROST_TEST_POSTGRES_URL`` is set). Processes are inspected through ``/proc`` (Linux only).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database

BIFROST = [sys.executable, "-m", "app.cli"]
START_TIMEOUT = 90.0

# Workflows every fault test can use. `hold` blocks until a file appears, so a test decides when
# a run ends without timing assumptions; `spawn` leaves child processes behind in several ways.
FAULT_WORKFLOWS = textwrap.dedent(
    '''
    import asyncio
    import os
    import subprocess
    import sys

    from bifrost import workflow


    @workflow
    async def noop(n: int = 0) -> dict:
        return {"n": n}


    @workflow(timeout_seconds=600)
    async def hold(path: str) -> dict:
        print("holding", flush=True)
        while not os.path.exists(path):
            await asyncio.sleep(0.05)
        return {"held": True}


    async def _spawn(pid_file: str, mode: str) -> dict:
        """Start a plain child, a setsid child and a double-forked daemon, write their pids, then
        return (mode=return), block (mode=block: a timeout or cancel ends it) or die (mode=die)."""
        plain = subprocess.Popen(["sleep", "600"])
        detached = subprocess.Popen(["setsid", "sleep", "600"])
        daemon_file = pid_file + ".daemon"
        subprocess.run(["sh", "-c", f"setsid sh -c 'sleep 600 & echo $! > {daemon_file}' &"], check=True)
        while not os.path.exists(daemon_file) or not open(daemon_file).read().strip():
            await asyncio.sleep(0.02)
        pids = [plain.pid, detached.pid, int(open(daemon_file).read())]
        with open(pid_file + ".tmp", "w") as handle:
            handle.write(" ".join(map(str, [*pids, os.getpid()])))
        os.replace(pid_file + ".tmp", pid_file)
        if mode == "die":
            os._exit(7)
        if mode == "block":
            while True:
                await asyncio.sleep(0.1)
        return {"pids": pids}


    @workflow(timeout_seconds=600)
    async def spawn(pid_file: str, mode: str = "return") -> dict:
        return await _spawn(pid_file, mode)


    @workflow(timeout_seconds=2)
    async def spawn_and_time_out(pid_file: str) -> dict:
        return await _spawn(pid_file, "block")


    @workflow
    async def hog(mb: int) -> int:
        data = b"x" * (mb * 1024 * 1024)
        return len(data)


    @workflow(timeout_seconds=120)
    async def hog_children(mb_each: int, count: int) -> int:
        code = f"import time; data = b'x' * ({mb_each} * 1024 * 1024); print('ready', flush=True); time.sleep(600)"
        children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(count)]
        for child in children:
            child.stdout.readline()
        while True:
            await asyncio.sleep(0.1)


    @workflow
    async def worker_pid() -> int:
        return os.getpid()
    '''
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----- processes ---------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended: only its exit status waits to be collected)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError):
                found.extend(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid``."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return [p for p in found if alive(p)]


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` (a safety net, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    """Wait for ``pids`` to end; returns those still alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:  # never leave them running past the test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


# ----- the server ----------------------------------------------------------------------------------
class Serve:
    """``bifrost serve`` in a child process of the test, on its own home, workspace and database."""

    def __init__(self, root: Path, database_url: str | None, workers: int = 2, **settings: str) -> None:
        self.root = root
        self.workspace = root / "workspace"
        self.workspace.mkdir(parents=True, exist_ok=True)
        (self.workspace / "faults.py").write_text(FAULT_WORKFLOWS)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
        self.env.update(
            BIFROST_HOME=str(root / "home"),
            BIFROST_WORKSPACE=str(self.workspace),
            BIFROST_HOST="127.0.0.1",
            BIFROST_PORT=str(self.port),
            BIFROST_WORKERS=str(workers),
            BIFROST_SCHEDULER_ENABLED="false",
            BIFROST_LOG_FLUSH_SECONDS="0.2",
            BIFROST_ADMIN_PASSWORD="fault-injection",
        )
        if database_url:
            self.env["BIFROST_DATABASE_URL"] = database_url
        self.env.update({f"BIFROST_{k.upper()}": v for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "server.log"
        self.key = ""

    def cli(self, *args: str) -> str:
        done = subprocess.run([*BIFROST, *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def init(self) -> Serve:
        self.cli("init")
        self.key = self.cli("api-key", "faults").strip().splitlines()[-1]
        return self

    def up(self) -> Serve:
        """``bifrost init``, start, then an admin API key made over HTTP.

        The same server and key as ``init().start()`` with one ``bifrost`` process fewer (its Python start-up
        and imports cost more than a login and a POST to the running server).
        """
        self.cli("init")
        self.start()
        self.key = self.admin_key()
        return self

    def admin_key(self) -> str:
        """A new API key of the platform admin, made over HTTP on the running server (signed in by password)."""
        with httpx.Client(base_url=self.url, timeout=60) as browser:
            browser.get("/login")  # sets the csrftoken cookie
            email = self.env.get("BIFROST_ADMIN_EMAIL", "admin@example.com")
            password = self.env["BIFROST_ADMIN_PASSWORD"]
            login = browser.post("/api/auth/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            created = browser.post(
                "/api/api-keys", json={"name": "faults"}, headers={"X-CSRFToken": browser.cookies["csrftoken"]}
            )
            assert created.status_code == 201, created.text
        return str(created.json()["key"])

    def start(self) -> Serve:
        """Start ``bifrost serve`` and wait until it answers."""
        return self.launch().wait_ready()

    def launch(self) -> Serve:
        """Start ``bifrost serve`` without waiting: several servers may boot side by side, then :meth:`wait_ready`."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*BIFROST, "serve"],
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self) -> Serve:
        """Wait until the launched server answers ``/healthz``; fail with its log if it exits or never does."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"bifrost serve exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        pytest.fail(f"bifrost serve did not answer:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    # ----- API ----------------------------------------------------------------------------------
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def submit(self, client: httpx.Client, workflow: str, **params: Any) -> str:
        response = client.post(f"/api/workflows/{workflow}/execute", json={"params": params})
        assert response.status_code in (200, 201, 202), response.text
        return str(response.json()["execution_id"])

    def execution(self, client: httpx.Client, execution_id: str) -> dict[str, Any]:
        response = client.get(f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_ended(self, client: httpx.Client, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def ended() -> bool:
            found.update(self.execution(client, execution_id))
            return found["status"] in ("Completed", "Failed", "Cancelled")

        wait_until(ended, timeout, f"execution {execution_id} to end")
        return found

    def fork_servers(self) -> list[int]:
        """Pids of the server's live children: its pool's fork server, which forks the workers."""
        return [p for p in children(self.pid) if alive(p)]

    def workers(self) -> list[int]:
        """Pids of the server's live workers (children of its fork server)."""
        return [w for server in self.fork_servers() for w in children(server) if alive(w)]


def statuses(database_url: str) -> dict[str, str]:
    """``{execution id: status}`` read straight from the database (the server may be down)."""
    from sqlalchemy import text

    from app.db import create_engine

    async def read() -> dict[str, str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT id, status FROM execution"))
                return {row[0]: row[1] for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


@contextlib.contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL of ``kind`` (``sqlite`` or ``postgres``; the latter skipped without a server)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("Postgres fault tests need BIFROST_TEST_POSTGRES_URL (a Postgres server to create databases on)")
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)
