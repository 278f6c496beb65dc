"""The workspace scan: import every file in a throwaway process, and find the files that break importing.

A workspace file can do worse than raise: ``os._exit(3)`` or a hang at module level would take down
(or stall) every warm worker that imports it. So the scan process says which file it is about to
import before each one; when the process ends without its report, the file it was importing is
the culprit, and when one file takes longer than the import timeout, the process is killed and
that file is. The culprit is recorded as a workspace error and the scan runs again without it;
warm workers are then told to skip every file that failed (:attr:`ScanResult.skip`), so one bad
file never costs the other workflows a worker or an import timeout. Verdicts on files that ended
or hung the process are remembered per file version (modification time and size), so an unchanged
bad file is not waited for again at the next scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine import procs
from app.engine.forkserver import ForkServer
from app.engine.protocol import ScanResult, decode_message
from app.engine.spawn import (
    STDERR_TAIL_LINES,
    build_worker_env,
    describe_exit,
    format_seconds,
    give_to,
    start_worker,
)

# Seconds the parent waits past the in-process import timeout before it kills a scan (a hang in C
# code, where the in-process alarm cannot interrupt).
_KILL_MARGIN_SECONDS = 2.0
# More culprits than this in one scan: give up (something else is wrong).
_MAX_CULPRITS = 50


@dataclass(frozen=True)
class _Verdict:
    signature: tuple[int, int]
    entry: dict[str, Any]


class Quarantine:
    """Files that ended or hung an import process, per file version (mtime, size)."""

    def __init__(self) -> None:
        self._bad: dict[str, _Verdict] = {}

    @staticmethod
    def _signature(workspace: Path, relpath: str) -> tuple[int, int] | None:
        try:
            stat = (workspace / relpath).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self, workspace: Path) -> dict[str, dict[str, Any]]:
        """Still-valid verdicts: files changed or removed since they were judged are tried again."""
        valid: dict[str, dict[str, Any]] = {}
        for relpath, verdict in list(self._bad.items()):
            if self._signature(workspace, relpath) == verdict.signature:
                valid[relpath] = verdict.entry
            else:
                del self._bad[relpath]
        return valid

    def add(self, workspace: Path, relpath: str, entry: dict[str, Any]) -> None:
        """Remember that this version of ``relpath`` breaks importing."""
        signature = self._signature(workspace, relpath)
        if signature is not None:
            self._bad[relpath] = _Verdict(signature, entry)


async def scan_workspace(
    workspace: Path | str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
    user: str | None = None,
    import_timeout: float = 30.0,
    quarantine: Quarantine | None = None,
    launcher: ForkServer | None = None,
) -> ScanResult:
    """Import the workspace in one-shot worker processes and return what it defines.

    Args:
        workspace: The workspace folder.
        env: Extra environment variables for the process.
        timeout: Seconds one scan process may take in all.
        user: OS user to run it as.
        import_timeout: Seconds one file may take to import.
        quarantine: Verdicts kept between scans (a fresh one when None).
        launcher: The fork server of a pool whose ``env`` and ``user`` these are, to fork scan processes
            from (no interpreter start); None starts each one with ``python -m app.engine.worker``.

    Returns:
        Metadata of the available workflows and data providers, the errors (including files that
        ended or hung the import process) and, in ``skip``, the files warm workers must not import.

    Raises:
        RuntimeError: If the scan process fails before importing any file, or times out.
    """
    root = Path(workspace)
    quarantine = quarantine if quarantine is not None else Quarantine()
    culprits = quarantine.current(root)
    with tempfile.TemporaryDirectory(prefix="bifrost-scan-") as scratch:
        if user:
            give_to(Path(scratch), user)
        for _ in range(_MAX_CULPRITS):
            outcome = await _scan_once(root, Path(scratch), env, timeout, user, import_timeout, set(culprits), launcher)
            if isinstance(outcome, ScanResult):
                for entry in outcome.errors:  # timed out in-process: not waited for again while unchanged
                    if str(entry.get("error", "")).startswith("ImportTimeoutError") and entry.get("file"):
                        quarantine.add(root, entry["file"], entry)
                outcome.errors.extend(culprits.values())
                failed = {e["file"] for e in outcome.errors if e.get("file") and "files" not in e}
                outcome.skip = sorted(failed)
                return outcome
            relpath, entry = outcome
            culprits[relpath] = entry
            quarantine.add(root, relpath, entry)
    raise RuntimeError(f"workspace scan of {root}: more than {_MAX_CULPRITS} files end or hang the import")


async def _scan_once(
    workspace: Path,
    cwd: Path,
    env: dict[str, str] | None,
    timeout: float,
    user: str | None,
    import_timeout: float,
    skip: set[str],
    launcher: ForkServer | None,
) -> ScanResult | tuple[str, dict[str, Any]]:
    """One scan process: its result, or ``(file, error entry)`` of the file that ended or hung it."""
    args = ["--scan", "--import-timeout", str(import_timeout)]
    for relpath in sorted(skip):
        args += ["--skip", relpath]
    proc = await start_worker(
        workspace, args, env=build_worker_env(env), cwd=cwd, user=user, stdin=False, fork_server=launcher
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read())
    current: str | None = None
    result: ScanResult | None = None
    hung = False
    deadline = time.monotonic() + timeout
    file_deadline = deadline
    try:
        while True:
            wait = min(deadline, file_deadline) - time.monotonic()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.0, wait))
            except TimeoutError:
                hung = True
                break
            if not line:
                break
            message = decode_message(line)
            if message.get("type") == "importing":
                current = str(message["file"])
                file_deadline = time.monotonic() + import_timeout + _KILL_MARGIN_SECONDS
            elif message.get("type") == "scan":
                result = ScanResult.from_dict(message)
                current = None
    finally:
        if proc.returncode is None and (hung or result is None):
            procs.kill_tree(proc.pid)
        returncode = await proc.wait()
        procs.spawned.discard(proc.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(errors, 1.0)
    if result is not None:
        return result
    tail = (
        "\n".join(errors.result().decode(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:])
        if (errors.done() and not errors.cancelled() and errors.exception() is None)
        else ""
    )
    if current is None:
        what = f"did not finish within {format_seconds(timeout)}" if hung else describe_exit(returncode)
        raise RuntimeError(f"workspace scan process {what}:\n{tail}")
    if hung:
        reason = f"import timeout: importing it took longer than {format_seconds(import_timeout)}"
    else:
        reason = f"importing it ended the process ({describe_exit(returncode).replace('was ', '')})"
    entry = {
        "file": current,
        "error": f"{reason}; the file is skipped (its workflows are unavailable) until it changes",
        "traceback": tail or None,
    }
    return current, entry
