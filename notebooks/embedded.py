"""An embedded platform for offline notebooks: ``bifrost serve`` in a child process on a temporary home.

``%bifrost connect`` without a URL (and without ``BIFROST_URL``) starts one: a fresh SQLite database and
workspace in a temporary folder, a platform admin with a random password, an API key for the kernel,
and the server on a free loopback port. It runs in a subprocess, so the kernel never imports the
platform (``notebooks`` talks to it over HTTP like to any other), and it stops with the kernel.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 120.0
ADMIN_EMAIL = "notebook@bifrost.local"


class EmbeddedPlatformError(RuntimeError):
    """The embedded platform could not be started."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPlatform:
    """A platform server running in a child process.

    Attributes:
        root: Temporary folder holding ``home/`` (database, keys) and ``workspace/``.
        url: Where it listens.
        api_key: Key of its platform admin, used by the kernel.
        process: The server process.
    """

    root: Path
    url: str = ""
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    _log: Path | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Path:
        """The embedded platform's workspace folder (``%bifrost publish`` writes here)."""
        return self.root / "workspace"

    def _env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
        env.update(
            BIFROST_HOME=str(self.root / "home"),
            BIFROST_WORKSPACE=str(self.workspace),
            BIFROST_HOST="127.0.0.1",
            BIFROST_PORT=str(port),
            BIFROST_WORKERS=os.environ.get("BIFROST_EMBEDDED_WORKERS", "1"),
            BIFROST_ADMIN_EMAIL=ADMIN_EMAIL,
            BIFROST_ADMIN_PASSWORD=secrets.token_urlsafe(24),
            BIFROST_SCHEDULER_ENABLED="false",
        )
        return env

    def _cli(self, env: dict[str, str], *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise EmbeddedPlatformError(f"`bifrost {' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def start(self) -> EmbeddedPlatform:
        """Initialise the database, create the kernel's API key, start the server and wait until it answers.

        Raises:
            EmbeddedPlatformError: If a step fails or the server does not answer in time.
        """
        port = _free_port()
        env = self._env(port)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._cli(env, "init")
        self.api_key = self._cli(env, "api-key", "notebook kernel").strip().splitlines()[-1]
        self._log = self.root / "server.log"
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"],
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends its workers too
            )
        self.url = f"http://127.0.0.1:{port}"
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedPlatformError(f"the embedded platform exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise EmbeddedPlatformError(f"the embedded platform did not answer within {START_TIMEOUT_SECONDS:g} s")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server printed."""
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (and its workers) and delete the temporary folder."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def start_embedded() -> EmbeddedPlatform:
    """Start an embedded platform in a new temporary folder."""
    return EmbeddedPlatform(Path(tempfile.mkdtemp(prefix="bifrost-notebook-"))).start()
