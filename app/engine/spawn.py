"""How worker and scan processes are started: command, environment, identity, folders, and ends.

Shared by the warm pool (:mod:`app.engine.pool`) and the one-shot workspace scan
(:mod:`app.engine.scan`), so neither imports the other's internals.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.engine import procs

if TYPE_CHECKING:
    from app.engine.forkserver import ForkedProcess, ForkServer

WORKER_MODULE = "app.engine.worker"
# Folder that contains the ``app`` package, so workers can import it from any cwd.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Results may be large JSON lines; the worker caps them at 32 MiB.
LINE_LIMIT = 64 * 1024 * 1024
STDERR_TAIL_LINES = 40
# Inherited variables a worker must not see (it holds no database credentials
# or keys); pass what it needs explicitly with ``env``.
_PRIVATE_ENV_PREFIXES = ("BIFROST_",)
_PRIVATE_ENV_NAMES = frozenset({"DATABASE_URL", "PGPASSWORD"})


def check_worker_user(user: str | None) -> str | None:
    """Validate the OS user workers should run as (None: the server's own user).

    Raises:
        ValueError: If the user does not exist or the server cannot switch to it (not root).
    """
    if not user:
        return None
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"worker user {user!r} does not exist on this machine") from None
    if os.geteuid() != 0:
        raise ValueError(f"running workers as {user!r} needs the server to start as root")
    return user


# Environment variable telling ``bifrost.files`` where local mode keeps files (bifrost._local_files.ROOT_ENV).
LOCAL_FILES_ENV = "BIFROST_LOCAL_FILES_ROOT"


def process_identity(cwd: Path, user: str | None) -> dict[str, Any]:
    """Where and as whom a worker runs: in ``cwd``, a scratch folder of the pool (never the workspace,
    where a relative write would plant code, nor the server's working directory, where the default
    home with the database and keys lives), and as ``user`` if set."""
    identity: dict[str, Any] = {"cwd": str(cwd)}
    if user:
        import pwd

        entry = pwd.getpwnam(user)
        identity.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return identity


def give_to(folder: Path, user: str) -> None:
    """Make ``user`` (the workers' OS user) own ``folder``."""
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)


def scratch_folder(user: str | None) -> Path:
    """A fresh empty folder for workers' current directory, owned by ``user`` when set."""
    folder = Path(tempfile.mkdtemp(prefix="bifrost-worker-"))
    if user:
        give_to(folder, user)
    return folder


def check_local_files_root(root: Path, workspace: Path, user: str | None) -> Path:
    """Create the local-files root and check that it is apart from the workspace.

    Raises:
        ValueError: If the root is inside the workspace or the workspace inside the root.
    """
    root, workspace = root.resolve(), workspace.resolve()
    if root == workspace or workspace in root.parents or root in workspace.parents:
        raise ValueError(f"the local files folder {root} must not overlap the workspace {workspace}")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user:
        give_to(root, user)
    return root


def worker_args(workspace: Path, *extra: str) -> list[str]:
    """Arguments of ``python -m app.engine.worker`` for ``workspace`` (what a fork server's child gets)."""
    return ["--workspace", str(workspace), *extra]


def worker_command(workspace: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, *worker_args(workspace, *extra)]


async def start_worker(
    workspace: Path,
    extra: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    user: str | None,
    stdin: bool,
    fork_server: ForkServer | None,
) -> ForkedProcess | asyncio.subprocess.Process:
    """Start ``python -m app.engine.worker`` on ``workspace`` (a warm worker, or a scan with ``--scan``).

    Forked from ``fork_server`` (whose user the process then has) or, when None, a new interpreter run as
    ``user``. Registered in :data:`procs.spawned`, so no orphan sweep takes it for a stray.

    Args:
        workspace: The workspace folder.
        extra: Further arguments of the worker module.
        env: The process's whole environment (see :func:`build_worker_env`).
        cwd: Its working directory.
        user: The OS user to run a new interpreter as (None: ours).
        stdin: A pipe as stdin (a warm worker reads its jobs there), else ``/dev/null``.
        fork_server: The pool's fork server, or None.

    Returns:
        The process, with ``stdout`` and ``stderr`` readers (and ``stdin`` when asked).
    """
    proc: ForkedProcess | asyncio.subprocess.Process
    with procs.spawning():
        if fork_server is not None:
            proc = await fork_server.spawn(
                worker_args(workspace, *extra), cwd=cwd, env=env, stdin=stdin, limit=LINE_LIMIT
            )
        else:
            proc = await asyncio.create_subprocess_exec(
                *worker_command(workspace, *extra),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
                limit=LINE_LIMIT,
                **process_identity(cwd, user),
            )
        procs.spawned.add(proc.pid)
    return proc


def build_worker_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Build a worker's environment: ours minus private variables, then ``env``.

    Args:
        env: Variables to set in the worker (win over inherited ones).

    Returns:
        The environment, with the project root on ``PYTHONPATH`` so that
        ``python -m app.engine.worker`` works from any working directory.
    """
    merged = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_PRIVATE_ENV_PREFIXES) and key not in _PRIVATE_ENV_NAMES
    }
    merged.update(env or {})
    paths = [p for p in merged.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(_PROJECT_ROOT) not in paths:
        merged["PYTHONPATH"] = os.pathsep.join([*paths, str(_PROJECT_ROOT)])
    return merged


def kill_group(proc: asyncio.subprocess.Process | ForkedProcess) -> None:
    # The worker is the subreaper of every process its run started (setsid and double forks
    # included): freeze it, kill everything below it, then it (with its process group).
    if proc.returncode is not None:
        return
    procs.kill_tree(proc.pid)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "ended unexpectedly"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"was killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"
