"""Process trees on Linux: child subreaper, parent-death signal, descendants, killing a whole tree, memory.

Why this exists: a run's processes must end when the run ends, however it ends. Process groups are
not enough (``setsid`` leaves them, a double fork leaves the tree), so:

* every worker is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a process a run started that
  loses its parent is re-parented to the worker instead of init, so the worker's descendants are
  exactly the processes its runs started, whatever ``setsid`` or double forks they did;
* the serving process is a subreaper too, so what a dying worker leaves is re-parented to it and
  swept (:func:`sweep_orphans`);
* workers get a parent-death signal and watch their parent, and kill their tree when it dies.

Stdlib only: the worker imports this module. Everything degrades to a no-op off Linux.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterable, Iterator

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_KILL_PASSES = 20

# Pids of processes the serving process started on purpose (workers, scans): never swept.
spawned: set[int] = set()
# Spawns in flight (their pid is not in ``spawned`` yet): no sweep while > 0.
_spawning = [0]


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux / no libc prctl
        return False


def become_subreaper() -> bool:
    """Adopt orphaned descendants (``PR_SET_CHILD_SUBREAPER``); False where unsupported."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Get ``sig`` when the parent process dies (``PR_SET_PDEATHSIG``); False where unsupported."""
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def set_dumpable(dumpable: bool) -> bool:
    """Allow or refuse ptrace and ``/proc/<pid>/mem`` to other processes of the same user (``PR_SET_DUMPABLE``)."""
    return _prctl(PR_SET_DUMPABLE, int(dumpable))


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/<pid>/task/*/children``; empty if it is gone)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                found.extend(int(p) for p in handle.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``R``, ``S``, ``Z``...), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended)."""
    current = state(pid)
    return current is not None and current != "Z"


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_descendants(pid: int, keep: frozenset[int] = frozenset()) -> int:
    """SIGKILL every live process below ``pid`` except ``keep`` (and their subtrees); returns how many.

    Each pass freezes what it found (SIGSTOP) before killing it, so a process that forks in a loop
    cannot outrun the kill; passes repeat until nothing is left.
    """
    killed = 0
    for _ in range(_KILL_PASSES):
        found = [p for p in _below(pid, keep) if alive(p)]
        if not found:
            break
        _signal_all(found, signal.SIGSTOP)
        _signal_all(found, signal.SIGKILL)
        killed += len(found)
    return killed


def _below(pid: int, keep: frozenset[int]) -> list[int]:
    found: list[int] = []
    todo = [c for c in children(pid) if c not in keep]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def kill_tree(pid: int) -> None:
    """Freeze ``pid``, SIGKILL everything below it, then ``pid`` itself (and its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGSTOP)  # a stopped process starts no more children
    kill_descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def reap_children(pids: Iterable[int]) -> None:
    """Collect the exit status of ended children (``waitpid`` each, never ``-1``)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def spawning() -> Iterator[None]:
    """Around starting a process on purpose: no sweep takes it for an orphan before it is registered."""
    _spawning[0] += 1
    try:
        yield
    finally:
        _spawning[0] -= 1


def sweep_orphans() -> int:
    """In a subreaper: kill and reap children this process did not start (orphans of dead workers).

    Returns how many were killed; does nothing while a process is being started.
    """
    if _spawning[0]:
        return 0
    me = os.getpid()
    strays = [p for p in children(me) if p not in spawned]
    killed = 0
    for pid in strays:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
            killed += kill_descendants(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed += 1
    # Killed ones (and zombies handed over by a dead worker) are ours to reap; started ones are not.
    reap_children(p for p in children(me) if p not in spawned and state(p) == "Z")
    return killed


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every process below it."""
    return rss_bytes(pid) + sum(rss_bytes(p) for p in descendants(pid))


def vm_bytes(pid: int | str = "self") -> int:
    """Virtual memory size of ``pid`` (what ``RLIMIT_AS`` counts)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[0]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer ended since boot (None if unknown)."""
    try:
        with open("/proc/vmstat", "rb") as handle:
            for line in handle:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
